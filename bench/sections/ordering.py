"""Per-key ordering on Redis: what ``@consumer(..., ordered=True)`` costs a consuming worker, and how
fast a backfill puts archived events into one service's queue.

Consume: a queue pre-filled with the same events spread over 50 keys (restored with DUMP/RESTORE,
so every run drains the same messages), drained by service ``dedupe`` (duplicate suppression on,
SQLite) and by service ``ordered`` (the same handler with ``ordered=True``), each with ``-P solo``
and with ``-P prefork -c 2``; then ``ordered`` on one key, where every event waits for the one
before it. Backfill: ``ops.backfill.backfill`` (what ``events backfill`` runs) of the archive
into one queue, with ``--rate`` out of the way (its default is 500/s).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from unittest import mock

from ..common import Harness

NAME = "ordering"
TITLES = ("Per-key ordering and backfill",)
EVENTS = 3000
KEYS = 50


def describe(bench: Harness) -> None:
    bench.results.section(
        "Per-key ordering and backfill",
        f"Consume on Redis: a queue pre-filled with {bench.n(EVENTS)} events over {KEYS} keys, drained by the "
        "same no-op handler (duplicate suppression on, SQLite) without and with `ordered=True`, "
        f"{bench.rounds} runs per figure, each with a fresh worker and database; time from the first message "
        "taken until the queue and its unacked messages are empty. Backfill: the archive's events into one "
        "service's queue (`ops.backfill.backfill`, what `events backfill` runs, rate limit out of the way).",
    )


def fill(bench: Harness, service: str, n: int, keys: int) -> bytes:
    """Pre-fill ``events.<service>`` with n events over ``keys`` keys; returns the list's DUMP."""
    import event_tasks

    from ..payload import CERTIFICATE_CREATED

    bench.flush()
    bench.declare([service])
    bench.send_through(bench.url)
    data = bench.payloads()
    for i in range(n):
        event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=f"course-v1:Bench+K{i % keys}+run")
    assert bench.client.llen(f"events.{service}") == n
    return bench.client.dump(f"events.{service}")


def run(bench: Harness) -> None:
    from ..workers import fabric_env, worker_command
    from .consume import drain_fabric_queue

    sec = "Per-key ordering and backfill"
    n = bench.n(EVENTS, 100)
    blobs = {
        ("dedupe", KEYS): fill(bench, "dedupe", n, KEYS),
        ("ordered", KEYS): fill(bench, "ordered", n, KEYS),
        ("ordered", 1): fill(bench, "ordered", n, 1),
    }
    runs = [
        ("dedupe", KEYS, "solo", f"unordered, -P solo, {KEYS} keys"),
        ("ordered", KEYS, "solo", f"ordered=True, -P solo, {KEYS} keys"),
        ("dedupe", KEYS, "prefork", f"unordered, -P prefork -c 2, {KEYS} keys"),
        ("ordered", KEYS, "prefork", f"ordered=True, -P prefork -c 2, {KEYS} keys"),
        ("ordered", 1, "prefork", "ordered=True, -P prefork -c 2, one key"),
    ]
    for _ in range(bench.rounds):
        for service, keys, pool, row in runs:
            queue = f"events.{service}"
            bench.restore(queue, blobs[(service, keys)])
            db = bench.fresh_sqlite(service)
            command = worker_command("config.celery_app", queue, service)
            if pool == "prefork":
                command[command.index("solo")] = "prefork"
                command[command.index("-c") + 1] = "2"
            w = bench.proc(command, fabric_env(service, bench.url, db), f"worker-{service}")
            secs = drain_fabric_queue(bench, w, queue, n)
            bench.stop(w)
            marks = bench.db_count(db, "SELECT count(*) FROM event_tasks_processedevent")
            assert marks == n, f"{row}: {marks} duplicate marks, expected {n}"
            bench.results.add(sec, f"consume, no-op, duplicate suppression on: {row}", "ours", n / secs, "events/s")
    bench.results.note(
        sec,
        "Plain Celery and the Open edX Redis bus have no per-key order to compare with: a Celery worker with "
        "two processes applies two events of one key at once, and the Open edX consumer reads its stream one "
        "entry at a time (its consume figure is in the consume section).",
    )
    backfill_rate(bench, sec, n)


def backfill_rate(bench: Harness, sec: str, n: int) -> None:
    from celery import Celery

    from event_tasks import conf
    from event_tasks.ops import backfill

    from ..payload import CERTIFICATE_CREATED

    archived = dataclasses.replace(conf.settings(), archive_days=7.0)
    with (
        mock.patch.object(conf, "settings", lambda: archived),
        mock.patch.object(backfill, "settings", lambda: archived),
    ):
        from event_tasks.send.publisher import Publisher

        app = Celery("bench-backfill", broker=bench.url, set_as_current=False)
        publisher = Publisher(app, "lms", archived)
        data = bench.payloads()
        for _ in range(bench.rounds):
            bench.flush()
            bench.declare(["dedupe"])
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            for i in range(n):
                publisher.send(CERTIFICATE_CREATED, data[i % 16], key=f"course-v1:Bench+K{i % KEYS}+run")
            bench.client.delete("events.dedupe")
            t = time.perf_counter()
            summary = backfill.backfill(app, "dedupe", since, rate=1e9)
            elapsed = time.perf_counter() - t
            assert summary.put == n and bench.client.llen("events.dedupe") == n, (summary, n)
            bench.results.add(sec, "backfill into one queue (Redis archive)", "ours", n / elapsed, "events/s")
