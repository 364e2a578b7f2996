"""Outbox relay vs direct sends: a producer process with its own SQLite or PostgreSQL database
(``bench/outbox_producer.py``), then ``manage.py events relay`` publishing the pending rows."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

from ..common import BATCH_SIZE, ROOT, Harness

NAME = "outbox"
TITLES = ("Outbox relay vs direct sends",)
OUTBOX_EVENTS = 300
OUTBOX_PENDING = 600


def describe(bench: Harness) -> None:
    r = bench.results
    rounds = f"{bench.rounds} runs per figure"
    r.section(
        "Outbox relay vs direct sends",
        f"Events/s of one producer process with its own database "
        f"(one event per transaction), {bench.n(OUTBOX_EVENTS)} events per mode and run, 3 subscribed "
        f"services on Redis; {rounds}.",
    )


def run(bench: Harness) -> None:
    from ..workers import PY, fabric_env, wait_until

    sec = "Outbox relay vs direct sends"
    n = bench.n(OUTBOX_EVENTS)
    services = ["s00", "s01", "s02"]
    for rnd in range(bench.rounds):
        for db_kind in ("SQLite", "PostgreSQL"):
            bench.flush()
            bench.declare(services)
            db = bench.reset_postgres() if db_kind == "PostgreSQL" else bench.fresh_sqlite("producer")
            env = fabric_env("lms", bench.url, db)
            pending_n = bench.n(OUTBOX_PENDING)
            out = subprocess.run(
                [
                    PY,
                    "-m",
                    "bench.outbox_producer",
                    "--events",
                    str(n),
                    "--pending",
                    str(pending_n),
                    "--batch",
                    str(BATCH_SIZE),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if out.returncode != 0:
                raise RuntimeError(f"outbox producer failed:\n{out.stderr[-3000:]}")
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            pending = bench.db_count(db, "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL")
            assert pending == pending_n, f"{pending} pending outbox rows, expected {pending_n}"
            relay = bench.proc([PY, "manage.py", "events", "relay", "--grace", "0"], env, "relay")
            started = time.perf_counter()
            wait_until(
                lambda: bench.db_count(db, "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL") == 0,
                300,
                "the relay to publish the outbox",
                interval=0.02,
                proc=relay,
            )
            relay_wall = time.perf_counter() - started
            bench.stop(relay)
            rows = bench.db_rows(db, "SELECT sent_at FROM event_tasks_outboxevent WHERE attempts > 1 ORDER BY sent_at")
            times = [r[0] if isinstance(r[0], dt.datetime) else dt.datetime.fromisoformat(str(r[0])) for r in rows]
            assert len(times) == pending_n, (len(times), pending_n)
            # the relay marks each batch sent with one time stamp: rate over the batches after the first
            first = times[0]
            after_first = sum(1 for t in times if t > first)
            span = (times[-1] - first).total_seconds()
            relay_rate = after_first / span if span > 0 else pending_n / relay_wall
            depths = [bench.client.llen(f"events.{s}") for s in services]
            expected = 3 * (n + 1) + pending_n + ((n + 1) if "atomic_batch" in figures else 0)
            assert all(d == expected for d in depths), f"queue depths {depths}, expected {expected}"
            bench.results.add(
                sec, f"direct `send_event` (no transaction), {db_kind}", "ours", figures["direct"], "events/s", events=n
            )
            atomic_row = f"`transaction.atomic()` + `send_event`, one event per transaction, {db_kind}"
            bench.results.add(
                sec,
                atomic_row,
                "ours",
                figures["atomic"],
                "events/s",
                events=n,
                note="outbox row written in the transaction, published right after commit, then marked sent",
            )
            bench.results.add(
                sec,
                atomic_row,
                "celery",
                figures["plain_on_commit"],
                "events/s",
                events=n,
                note="`transaction.on_commit(lambda: send_task(...))`, the usual idiom: no "
                "outbox, the event is lost if the broker is down at commit",
            )
            if "atomic_batch" in figures:
                bench.results.add(
                    sec,
                    f"`transaction.atomic()` + `send_events`, {BATCH_SIZE} events per transaction, {db_kind}",
                    "ours",
                    figures["atomic_batch"],
                    "events/s",
                    events=n,
                )
            bench.results.add(
                sec,
                f"`python manage.py events relay`, {pending_n} pending rows, {db_kind}",
                "ours",
                relay_rate,
                "events/s",
                events=pending_n,
                relay_wall_s_including_start=relay_wall,
            )
    for r in bench.results.rows.values():
        if r.section == sec and "events relay" in r.name and "ours" in r.figures:
            walls = r.figures["ours"].params.get("relay_wall_s_including_start", [])
            r.figures["ours"].note = (
                "rate over the batches after the first (the relay marks each batch sent "
                "with one time stamp); the whole command, Django set-up included, took "
                + ", ".join(f"{w:.1f}" for w in walls)
                + " s in the runs"
            )
    for row_kind in ("`transaction.atomic()`", "`python manage.py events relay`", "direct"):
        for db_kind in ("SQLite", "PostgreSQL"):
            for r in bench.results.rows.values():
                if r.section == sec and r.name.startswith(row_kind) and r.name.endswith(db_kind):
                    for system, why in (
                        ("kombu", "no outbox in kombu"),
                        (
                            "openedx",
                            "the Open edX event bus has no outbox (events are produced when the signal is sent)",
                        ),
                    ):
                        if system not in r.figures:
                            bench.results.unavailable(sec, r.name, system, why, "events/s")
                    if "celery" not in r.figures:
                        why = (
                            "plain Celery has no outbox or relay"
                            if "relay" in r.name
                            else "plain Celery has no batch send"
                            if "send_events" in r.name
                            else "see 'Publish on Redis', 3 subscribed services"
                        )
                        bench.results.unavailable(sec, r.name, "celery", why, "events/s")
