"""Batched consumption (``@consumer(..., batch=N)``) on a real worker, both brokers: events are
applied in batches, once each; a failing batch is split so that only the bad event is retried and
dead-lettered; a worker killed mid-batch loses nothing and applies nothing twice."""

from __future__ import annotations

import json

import pytest

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_UPDATED

pytestmark = pytest.mark.timeout(240)


def batches(platform):
    path = platform.dir / "eta-batches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def marks(platform, ids):
    rows = platform.query("eta", "SELECT event_id, count(*) AS c FROM event_tasks_processedevent GROUP BY event_id")
    counts = {r["event_id"]: r["c"] for r in rows}
    return [counts.get(i, 0) for i in ids]


def queued_while_stopped(platform, sends):
    """Send while eta's worker is stopped (its queue declared), so the worker finds a full queue."""
    worker = platform.worker("eta")
    if not worker.starts:
        worker.start()
    worker.stop()
    events = [platform.send(PROBE_UPDATED, data, key=key) for data, key in sends]
    worker.start()
    return events


def test_events_are_applied_in_batches_once_each(crash_platform):
    plat = crash_platform
    before = len(batches(plat))
    events = queued_while_stopped(plat, [({"n": i}, None) for i in range(120)])
    ids = [e.id for e in events]
    wait_until(lambda: marks(plat, ids) == [1] * 120, 60, message=lambda: f"120 marks, have {sum(marks(plat, ids))}")
    sizes = [len(b) for b in batches(plat)[before:]]
    assert sum(sizes) == 120 and max(sizes) > 1 and max(sizes) <= 50, sizes
    results = plat.query(
        "eta",
        "SELECT task_id, task_name, status FROM django_celery_results_taskresult WHERE task_name = ?",
        (PROBE_UPDATED + ":batch",),
    )
    assert results and {r["status"] for r in results} == {"SUCCESS"}


def test_a_failing_batch_is_split_and_only_the_bad_event_is_dead_lettered(crash_platform):
    plat = crash_platform
    sends = [({"n": i}, "fail:eta:always" if i == 7 else None) for i in range(20)]
    events = queued_while_stopped(plat, sends)
    bad, good = events[7], [e for i, e in enumerate(events) if i != 7]
    wait_until(
        lambda: [r for r in plat.dead_letters("eta") if r["event_id"] == bad.id],
        90,
        message="the bad event's dead letter",
    )
    wait_until(lambda: marks(plat, [e.id for e in good]) == [1] * 19, 30, message="the 19 good events applied")
    (row,) = [r for r in plat.dead_letters("eta") if r["event_id"] == bad.id]
    assert row["reason"] == "max_retries" and "eta fails attempt" in row["detail"]
    assert marks(plat, [bad.id]) == [0]
    assert not [r for r in plat.dead_letters("eta") if r["event_id"] != bad.id]


def test_a_worker_killed_mid_batch_loses_nothing(crash_platform):
    plat = crash_platform
    sends = [({"n": i}, "slow:eta:30" if i == 0 else None) for i in range(10)]
    events = queued_while_stopped(plat, sends)
    ids = [e.id for e in events]
    wait_until(lambda: any(ids[0] in b for b in batches(plat)), 30, message="the slow batch to start")
    plat.worker("eta").kill()  # mid-batch: nothing of it was committed or acked
    assert marks(plat, ids) == [0] * 10
    plat.worker("eta").start()
    wait_until(lambda: marks(plat, ids) == [1] * 10, 60, message=lambda: f"every event once, have {marks(plat, ids)}")
