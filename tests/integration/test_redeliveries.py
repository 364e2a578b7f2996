"""Only deliveries whose handlers started and never finished count towards a poison message.

RabbitMQ flags every requeued message ``redelivered``: a dropped connection hands back every
unacked message, including one whose handler finished but whose ack could not be sent. Such
drops used to count as lost workers and turn a healthy event into a ``worker_lost`` dead letter.
alpha runs here without duplicate suppression, so that every copy runs its (slow) handler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.brokers import rabbitmq_vhost, rabbitmqctl
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(180)


def close_connections(vhost_url: str) -> str:
    vhost = vhost_url.rsplit("/", 1)[1]
    return rabbitmqctl("close_all_connections", "--vhost", vhost, "--limit", "100", "test: connection dropped")


def test_dropped_connections_while_the_handler_runs_do_not_make_a_poison_message(
    workdir: Path, probe_template_db: Path
) -> None:
    with rabbitmq_vhost() as url:
        plat = Platform(
            url,
            workdir / "redeliveries",
            env={"EVENT_TASKS_MAX_REDELIVERIES": "2", "PROBE_DEDUP": "0"},
            template_db=probe_template_db,
        )
        try:
            worker = plat.worker("alpha", pool="prefork", concurrency=2).start()
            event = plat.send(PROBE_CREATED, {"n": 1}, key="always_slow:alpha:6")
            for attempt in (1, 2, 3):
                plat.wait_calls("alpha", event.id, attempt, timeout=60)  # the handler runs (6 s)...
                close_connections(url)  # ...and its ack will be lost
            plat.wait_calls("alpha", event.id, 4, timeout=60)  # the copy after the last drop
            settle = plat.send(PROBE_CREATED, {"n": 2})
            plat.wait_calls("alpha", settle.id, timeout=60)
            assert plat.dead_letters("alpha") == [], [dict(r) for r in plat.dead_letters("alpha")]
            assert plat.calls("alpha", event.id) == 4
            assert worker.running
        finally:
            plat.stop_all()
