"""A broker restart loses nothing: Redis with AOF, RabbitMQ with durable queues and persistent
messages. Producers and running workers reconnect by themselves; a stopped service catches up."""

from __future__ import annotations

import pytest

from tests.brokers import RedisServer
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(300)


def test_queued_events_survive_a_broker_restart(restartable_broker, workdir, probe_template_db, request):
    own_broker = restartable_broker
    name = f"restart-{request.node.callspec.id}"
    plat = Platform(own_broker.url, workdir / name, template_db=probe_template_db)
    try:
        plat.start("alpha", "beta")
        before = [plat.send(PROBE_CREATED, {"n": i}) for i in range(10)]
        for e in before:
            plat.wait_calls("beta", e.id)
        plat.worker("alpha").stop()
        waiting = [plat.send(PROBE_CREATED, {"n": 10 + i}) for i in range(10)]  # queued for alpha
        for e in waiting:
            plat.wait_calls("beta", e.id)

        if isinstance(own_broker, RedisServer):
            own_broker.stop()
            own_broker.start()
        else:
            own_broker.restart()

        after = [plat.send(PROBE_CREATED, {"n": 20 + i}) for i in range(10)]  # same producer: reconnects
        for e in after:
            plat.wait_calls("beta", e.id, timeout=60)  # beta reconnected by itself
        plat.worker("alpha").start()
        for e in before + waiting + after:
            plat.wait_calls("alpha", e.id, timeout=60)
        everything = before + waiting + after
        assert [plat.calls("alpha", e.id) for e in everything] == [1] * 30
        assert [plat.calls("beta", e.id) for e in everything] == [1] * 30
    finally:
        plat.stop_all()
