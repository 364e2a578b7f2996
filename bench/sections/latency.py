"""Latency and memory on Redis: events sent at a paced rate to one idle ``-P solo`` worker (send→handler
latency, p50 and p99), and the worker's idle RSS after the warm-up."""

from __future__ import annotations

import time
import uuid

from ..common import Harness, pct

NAME = "latency"
TITLES = ("Latency and memory on Redis",)
LATENCY_EVENTS = 400
LATENCY_RATE = 200.0
WARMUP_EVENTS = 20


def describe(bench: Harness) -> None:
    r = bench.results
    rounds = f"{bench.rounds} runs per figure"
    r.section(
        "Latency and memory on Redis",
        f"{bench.n(LATENCY_EVENTS)} events sent at {LATENCY_RATE:.0f}/s "
        f"(paced, one producer) to one idle `-P solo` worker; latency = the handler's clock minus the "
        f"event's send time; {rounds}, each with a fresh worker. Idle RSS: VmRSS from /proc of the worker "
        f"process, read after {WARMUP_EVENTS} warm-up events and 1 s idle.",
    )


def run(bench: Harness) -> None:
    import event_tasks

    from ..openedx_bus import make_producer, sender
    from ..payload import CERTIFICATE_CREATED, COURSE_KEY
    from ..workers import wait_until

    sec = "Latency and memory on Redis"
    n = bench.n(LATENCY_EVENTS, 100)
    data = bench.payloads()
    oe_send = None
    for rnd in range(bench.rounds):
        for system in ("ours", "celery", "openedx"):
            lat = bench.tmp / f"latency-{system}-{uuid.uuid4().hex[:6]}.txt"
            lat.write_text("")
            bench.flush()
            if system == "ours":
                bench.declare(["latency"])
                w = bench.fabric_worker(
                    "latency", bench.url, bench.fresh_sqlite("latency"), BENCH_LATENCY_FILE=str(lat)
                )

                def send(i: int) -> None:
                    event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
            elif system == "celery":
                bench.plain_queue(bench.url)
                w = bench.plain_worker(bench.url, BENCH_MODE="latency", BENCH_LATENCY_FILE=str(lat))
                send = bench.plain_sender(bench.url)
            else:
                w = bench.openedx_consumer(f"lat{rnd}", "latency", BENCH_LATENCY_FILE=str(lat))
                if oe_send is None:
                    oe_send = sender(make_producer(bench.url))
                send = oe_send
                wait_until(
                    lambda: b"ready" in w.log.read_bytes() if w.log.exists() else False,
                    60,
                    "the Open edX consumer",
                    proc=w,
                )
                time.sleep(0.5)  # its consumer group is created after "ready" is printed

            def lines() -> int:
                with open(lat) as fh:
                    return sum(1 for _ in fh)

            for i in range(WARMUP_EVENTS):  # readiness + warm-up (the worker may still be starting)
                send(i)
                time.sleep(0.01)
            wait_until(
                lambda: lines() >= WARMUP_EVENTS, 120, f"{system} to handle the warm-up events", interval=0.05, proc=w
            )
            time.sleep(1.0)
            rss = w.rss_kib() / 1024
            interval = 1.0 / LATENCY_RATE
            start = time.perf_counter()
            for i in range(n):
                target = start + i * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                send(i)
            sent_rate = n / (time.perf_counter() - start)
            wait_until(
                lambda: lines() >= WARMUP_EVENTS + n, 300, f"{system} to handle {n} events", interval=0.05, proc=w
            )
            bench.stop(w)
            if hasattr(send, "close"):
                send.close()
            values = [float(x) * 1000 for x in lat.read_text().split()[WARMUP_EVENTS:]]
            p50, p99 = pct(values, 0.5), pct(values, 0.99)
            bench.results.add(
                sec,
                f"send→handler latency p50 at {LATENCY_RATE:.0f} events/s",
                system,
                p50,
                "ms",
                higher_is_better=False,
                events=n,
                achieved_send_rate=sent_rate,
            )
            bench.results.add(
                sec,
                f"send→handler latency p99 at {LATENCY_RATE:.0f} events/s",
                system,
                p99,
                "ms",
                higher_is_better=False,
                events=n,
                max_ms=max(values),
            )
            bench.results.add(
                sec,
                "idle worker RSS",
                system,
                rss,
                "MiB",
                higher_is_better=False,
                note="the consumer process (`python -m bench.openedx_bus consume`), not a Celery worker"
                if system == "openedx"
                else "",
            )
    consume = bench.results.rows.get(("Consume on Redis", "no-op handler, duplicate suppression off"))
    if consume is not None and "ours" in consume.figures and consume.figures["ours"].median:
        bench.results.note(
            sec,
            f"For scale: event-tasks' worker drained a pre-filled queue at "
            f"{consume.figures['ours'].median:,.0f} events/s in this run (Consume on Redis, "
            f"no-op row), so {LATENCY_RATE:.0f} events/s keeps it "
            f"{100 * LATENCY_RATE / consume.figures['ours'].median:.0f}% busy; plain Celery "
            f"drained {consume.figures['celery'].median:,.0f} events/s.",
        )
    bench.results.note(
        sec,
        "Latency is measured across processes with the wall clock (same machine); the "
        "send time is the event's own time stamp (event-tasks: the envelope `time`; plain "
        "Celery: the same envelope built just before `send_task`; Open edX: the metadata "
        "`time`), so it includes the producer's publish step.",
    )
    bench.results.note(
        sec,
        "event-tasks' latency worker runs with duplicate suppression off (like plain "
        f"Celery, which has none), with the project's settings: {bench.host_settings()}.",
    )
