"""Per-key ordering under faults (``@consumer(..., ordered=True)``, event_tasks/consume/ordering.py).

On each broker: service ``o1`` (tests/faults/ordered) on a prefork worker with two processes
consumes EVENT_TASKS_ORDERED_EVENTS events (default 10,000) over 50 keys, sent in one stream
(event ``i`` is number ``i // 50`` of key ``k<i % 50>``; the first of each key is a ``created``,
the rest ``updated``: one order across two types). About 30% of the events fail once,
transiently, after writing their row (the write rolls back). A second worker of o1 (three pool
processes) stands by: one consumer at a time (RabbitMQ: a single-active-consumer queue; Redis:
the queue's lease). The active worker is SIGKILLed with its pool while about 40% are applied; the
standby takes over (with another pool size: how many keys run at once may change across a
restart), and the killed one comes back as the standby. At the end every key's rows, in the
order they were written, hold its numbers 0, 1, 2, ... exactly once: none lost, none applied
twice, none overtaken.

Besides the stream, the key ``hold`` has an event that always fails, then three more: they wait
for it through its retries, and its ``max_retries`` dead letter says it held them back.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from event_tasks.testing import ServiceWorker, wait_until
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED
from tests.faults.test_fault_suite import FAULT_ENV
from tests.integration.fabric import Platform

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.ordered]

EVENTS = int(os.environ.get("EVENT_TASKS_ORDERED_EVENTS", "10000"))
KEYS = 50
ORDERED_ENV = {**FAULT_ENV, "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.faults.ordered"}


def rows(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT event_id, key, n FROM ordered_o1_applied ORDER BY id").fetchall()


def applied(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM ordered_o1_applied").fetchone()[0]


def received(worker: ServiceWorker) -> int:
    return worker.log().count("] received")


@pytest.mark.timeout(900)
def test_each_key_applied_in_send_order_through_failures_and_a_sigkill(broker_url: str, tmp_path: Path):
    plat = Platform(broker_url, tmp_path / "platform", env=ORDERED_ENV)
    worker = plat.worker("o1", pool="prefork", concurrency=2)
    plat.start("o1")
    standby = ServiceWorker(
        "o1", env=plat.worker_env("o1"), log_dir=str(plat.dir), pool="prefork", concurrency=3
    ).start(wait=False)  # on Redis it waits for the lease before its consumer starts
    wait_until(
        lambda: "this worker stands by" in standby.output() or " ready." in standby.log(), 60, 0.1, "the standby"
    )
    db = plat.db_path("o1")
    try:
        producer = plat.producer()
        held = producer.send_many(
            [(PROBE_CREATED, {"n": 0, "note": "always-fail"}, "hold")]
            + [(PROBE_UPDATED, {"n": n}, "hold") for n in (1, 2, 3)]
        )
        sent: dict[str, tuple[str, int]] = {e.id: ("hold", e.data["n"]) for e in held[1:]}
        for start in range(0, EVENTS, 500):
            batch = [
                (PROBE_CREATED if i < KEYS else PROBE_UPDATED, {"n": i // KEYS}, f"k{i % KEYS}")
                for i in range(start, min(EVENTS, start + 500))
            ]
            sent.update({e.id: (e.key or "", e.data["n"]) for e in producer.send_many(batch)})

        at_kill = wait_until(lambda: (n := applied(db)) >= 0.4 * EVENTS and n, 300, 0.05, "40% of the events applied")
        assert received(standby) == 0, "the standby worker took events while the other was active"
        worker.kill()
        wait_until(lambda: received(standby), 120, 0.1, "the standby to take over")
        worker.start(wait=False)  # the standby now
        wait_until(
            lambda: applied(db) >= len(sent), 600, 0.2, lambda: f"every event applied ({applied(db)} of {len(sent)})"
        )
        wait_until(lambda: plat.dead_letters("o1"), 60, 0.2, "the always-failing event's dead letter")
    finally:
        plat.stop_all()
        standby.stop()
    assert received(standby) > 0, "the standby never took over"

    written = rows(db)
    counts = Counter(event_id for event_id, _, _ in written)
    assert set(counts) == set(sent), f"lost: {len(set(sent) - set(counts))}, unexpected: {set(counts) - set(sent)}"
    assert [e for e, c in counts.items() if c > 1] == [], "applied twice"
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, key, n in written:
        by_key[key].append(n)
    out_of_order = {k: ns for k, ns in by_key.items() if ns != sorted(ns)}
    assert not out_of_order, f"keys applied out of order: { {k: ns[:20] for k, ns in out_of_order.items()} }"
    assert by_key["hold"] == [1, 2, 3]
    assert all(by_key[f"k{k}"] == list(range(EVENTS // KEYS)) for k in range(KEYS))
    assert 0.4 * EVENTS <= at_kill < EVENTS, f"the kill came at {at_kill} applied"
    failed_once = len(list((plat.dir / "failed-once-o1").iterdir()))
    assert failed_once > 0.2 * EVENTS, f"only {failed_once} transient failures"

    (letter,) = plat.dead_letters("o1")
    assert letter["reason"] == "max_retries"
    assert letter["event_id"] == held[0].id
    assert "held back 3 later event(s) of key 'hold'" in letter["detail"], letter["detail"]
    for event in held[1:]:
        assert event.id in letter["detail"]


def test_turning_ordering_on_for_a_running_rabbitmq_queue(tmp_path: Path):
    """A service whose queue exists without ``x-single-active-consumer`` gets an ordered handler: its
    worker refuses to start with one line that says what to run; the migration moves the waiting
    events into a queue with the argument, and the new worker applies them."""
    import subprocess
    import sys

    from kombu import Connection

    from event_tasks.brokers.topology import declare, service_queue
    from tests.brokers import rabbitmq_vhost
    from tests.integration.fabric import ROOT

    with rabbitmq_vhost() as url:
        plat = Platform(url, tmp_path / "platform", env=ORDERED_ENV)
        with Connection(url) as conn:  # the queue as the service's unordered release declared it
            declare(conn, [service_queue("o1", [PROBE_CREATED, PROBE_UPDATED], "classic", retry_exchange=True)])
        sent = plat.producer().send_many([(PROBE_UPDATED, {"n": n}, "k") for n in range(5)])
        refused = plat.worker("o1")
        with pytest.raises(RuntimeError):
            refused.start(timeout=60)
        out = refused.output()
        assert "x-single-active-consumer" in out and "events queues migrate --service o1" in out, out[-2000:]
        assert "Traceback" not in out, out[-3000:]
        env = {**os.environ, **plat.worker_env("o1")}
        moved = subprocess.run(
            [sys.executable, "manage.py", "events", "queues", "migrate", "--service", "o1", "--to", "classic"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert moved.returncode == 0, moved.stderr[-3000:]
        worker = ServiceWorker("o1", env=plat.worker_env("o1"), log_dir=str(plat.dir))
        try:
            worker.start()
            db = plat.db_path("o1")
            wait_until(lambda: applied(db) >= len(sent), 60, 0.1, "the moved events applied")
        finally:
            worker.stop()
        assert [n for _, key, n in rows(db) if key == "k"] == [0, 1, 2, 3, 4]
