"""Consume on Redis: one ``-P solo`` worker draining a pre-filled queue (restored with DUMP/RESTORE,
so every run drains the same messages), a fresh worker and database each run."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

from ..common import BATCH_SIZE, Harness

NAME = "consume"
TITLES = ("Consume on Redis",)
CONSUME_EVENTS = 3000


def describe(bench: Harness) -> None:
    r = bench.results
    rounds = f"{bench.rounds} runs per figure"
    r.section(
        "Consume on Redis",
        f"One worker (`-P solo`), a queue pre-filled with {bench.n(CONSUME_EVENTS)} "
        f"events; time from the first message taken until the queue and its unacked messages are empty; "
        f"{rounds}, each with a fresh worker (and fresh database).",
    )


def run(bench: Harness) -> None:
    import event_tasks

    from .. import adopted

    sec = "Consume on Redis"
    n = bench.n(CONSUME_EVENTS, 100)
    batch_supported = "batch" in inspect.signature(event_tasks.consumer).parameters
    noop_row = "no-op handler, duplicate suppression off"
    rows = {
        "noop": noop_row,
        "dedupe": "no-op handler, duplicate suppression on, SQLite",
        "dedupe-pg": "no-op handler, duplicate suppression on, PostgreSQL",
        "batched": f"batched handler (`@consumer(..., batch={BATCH_SIZE})`), no-op",
        "batchdedupe-pg": f"batched handler (batch={BATCH_SIZE}), duplicate suppression on, PostgreSQL",
        **adopted.ROWS,  # an outside service adopted by the README's steps (bench/adopted.py)
    }
    # pre-filled queues, restored (DUMP/RESTORE) before every run: every run drains the same messages
    blobs = {"noop": bench.fill_ours("noop", n), "dedupe": bench.fill_ours("dedupe", n)}
    blobs[adopted.SERVICE] = bench.fill_ours(adopted.SERVICE, n)
    if batch_supported:
        blobs["batched"] = bench.fill_ours("batched", n)
        blobs["batchdedupe"] = bench.fill_ours("batchdedupe", n)
    blobs.update(fill_comparators(bench, n))
    bench.postgres()
    outside = {system: adopted.AdoptedService(bench, v).write() for system, v in adopted.VARIANT_OF.items()}
    systems = ["noop", "plain", "plain-django", "openedx", "dedupe", "dedupe-pg", *outside] + (
        ["batched", "batchdedupe-pg"] if batch_supported else []
    )
    for rnd in range(bench.rounds):
        for system in systems:
            secs = drain_once(bench, system, n, blobs, bench.url, rnd, outside)
            rate = n / secs
            if system == "plain":
                for row in rows.values():
                    if row in (rows["batched"], rows["batchdedupe-pg"]) and not batch_supported:
                        continue
                    bench.results.add(sec, row, "celery", rate, "events/s", events=n)
            elif system == "openedx":
                for row in rows.values():
                    if row in (rows["batched"], rows["batchdedupe-pg"]) and not batch_supported:
                        continue
                    bench.results.add(sec, row, "openedx", rate, "events/s", events=n)
            elif system == "plain-django":
                bench.results.add(
                    sec,
                    noop_row,
                    "celery-django",
                    rate,
                    "events/s",
                    events=n,
                    note="a no-op task in this Django project (`celery -A config.celery_app`, "
                    "service `plaintask`, no event queue): the project's Celery settings "
                    "without the fabric",
                )
            else:
                bench.results.add(sec, rows[system], "ours", rate, "events/s", events=n)
    for row in rows.values():
        if row == noop_row or (row in (rows["batched"], rows["batchdedupe-pg"]) and not batch_supported):
            continue
        r = bench.results.row(sec, row, "events/s")
        for system, what in (
            ("celery", "a no-op task: plain Celery has no duplicate suppression (its no-op figure, same rounds)"),
            (
                "openedx",
                "a no-op receiver: the Open edX bus has no duplicate suppression (its no-op figure, same rounds)",
            ),
        ):
            if system in r.figures:
                r.figures[system].note = what
    if not batch_supported:
        bench.results.unavailable(
            sec,
            rows["batched"],
            "ours",
            "`@consumer` has no `batch=` option in this "
            f"checkout (signature: {inspect.signature(event_tasks.consumer)})",
            "events/s",
        )
    bench.results.note(
        sec,
        "Each system as it ships: event-tasks runs `celery -A config.celery_app` with "
        f"`config.settings.test` ({bench.host_settings()}); plain Celery is "
        "`bench/plain_celery.py` (no Django, no result backend, late acks, prefetch ×4, the "
        "same worker flags); the Open edX consumer loop (`RedisEventConsumer."
        "consume_indefinitely`: XREADGROUP of one entry + XACK per event).",
    )
    bench.results.note(sec, adopted.NOTE)
    adopted.compare(bench.results, sec)
    import bench.services.batched.handlers as batched

    if batch_supported:
        r = bench.results.row(sec, rows["batched"], "events/s")
        if "ours" in r.figures:
            r.figures["ours"].note = (
                "`@consumer(TYPE, batch=100, deduplicate=False)`"
                if not batched.DEDUPLICATE
                else "`@consumer(TYPE, batch=100)` (duplicate suppression on: the library "
                "refused `deduplicate=False` with `batch`)"
            ) + ", SQLite"


def fill_comparators(bench: Harness, n: int) -> dict[str, bytes]:
    """The DUMPs of plain Celery's queue (``plain``) and the Open edX stream (``openedx``), n events each."""
    from ..openedx_bus import TOPIC, make_producer, sender

    bench.flush()
    bench.plain_queue(bench.url)
    plain_send = bench.plain_sender(bench.url)
    for i in range(n):
        plain_send(i)
    plain_send.close()  # type: ignore[attr-defined]
    blobs = {"plain": bench.client.dump("events.plain")}
    bench.flush()
    oe_send = sender(make_producer(bench.url))
    for i in range(n):
        oe_send(i)
    assert bench.client.xlen(TOPIC) == n
    blobs["openedx"] = bench.client.dump(TOPIC)
    return blobs


def drain_fabric_queue(bench: Harness, w: Any, queue: str, n: int) -> float:
    """Seconds a fabric worker ``w`` takes to drain ``queue`` (its in-flight list and unacked hash too)."""
    from ..workers import drain_redis_lists

    return drain_redis_lists(
        bench.client, n, w, queue=queue, extra_lists=(queue + "\x06\x16inflight",), unacked=(f"unacked:{queue}",)
    )


def drain_once(
    bench: Harness,
    system: str,
    n: int,
    blobs: dict[str, bytes],
    url: str,
    rnd: int,
    outside: dict[str, Any] | None = None,
) -> float:
    """One run: restore ``system``'s pre-filled queue, start its worker (consumer) on ``url`` (the
    private Redis, or a proxy in front of it), and return the seconds it took to drain (watched on
    the private Redis directly); fails unless the handler ran for every event."""
    from .. import adopted
    from ..openedx_bus import TOPIC
    from ..workers import drain_redis_lists, drain_stream, fabric_env, worker_command

    outside = outside or {}
    done = bench.tmp / f"done-{uuid.uuid4().hex[:6]}"
    env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
    if system == "plain":
        bench.restore("events.plain", blobs["plain"])
        w = bench.plain_worker(url, **env)
        secs = drain_redis_lists(bench.client, n, w, queue="events.plain", unacked=("unacked",))
    elif system == "plain-django":
        # the same messages under a name that is no event queue: a worker of service
        # `plaintask` on `events.plain` would refuse to start (EventQueueMismatch)
        bench.restore("plaintask", blobs["plain"])
        db = bench.fresh_sqlite("plaintask")
        w = bench.proc(
            worker_command("config.celery_app", "plaintask", "plaintask"),
            fabric_env("plaintask", url, db, **env),
            "worker-plaintask",
        )
        secs = drain_redis_lists(bench.client, n, w, queue="plaintask", unacked=("unacked",))
    elif system == "openedx":
        bench.restore(TOPIC, blobs["openedx"])
        group = f"svc{rnd}"
        w = bench.openedx_consumer(group, "noop", url=url, **env)
        secs = drain_stream(bench.client, TOPIC, group, w)
    else:
        service = adopted.SERVICE if system in outside else system.replace("-pg", "")
        queue = f"events.{service}"
        bench.restore(queue, blobs[service])
        if system in outside:
            db = outside[system].fresh_db()
            w = outside[system].worker(**env)
        else:
            db = bench.reset_postgres() if system.endswith("-pg") else bench.fresh_sqlite(service)
            w = bench.fabric_worker(service, url, db, **env)
        secs = drain_fabric_queue(bench, w, queue, n)
    bench.stop(w)
    if not done.exists():
        raise RuntimeError(f"{system}: the handler did not run {n} times; log:\n{w.output()[-3000:]}")
    if system in ("noop", "dedupe", "dedupe-pg", "batched", "batchdedupe-pg", *outside):
        dead = bench.db_count(db, "SELECT count(*) FROM event_tasks_deadletter")
        assert dead == 0, f"{system}: {dead} dead letters"
        if system.startswith(("dedupe", "batchdedupe", "adopted")):
            marks = bench.db_count(db, "SELECT count(*) FROM event_tasks_processedevent")
            assert marks == n, f"{system}: {marks} duplicate marks, expected {n}"
    return secs
