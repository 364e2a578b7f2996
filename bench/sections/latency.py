"""Latency and memory on Redis: events sent at a paced rate to one idle ``-P solo`` worker (send→handler
latency, p50 and p99), and the worker's idle RSS after the warm-up."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

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
    sec = "Latency and memory on Redis"
    n = bench.n(LATENCY_EVENTS, 100)
    oe_senders: dict[str, Callable[[int], None]] = {}
    for rnd in range(bench.rounds):
        for system in ("ours", "celery", "openedx"):
            run_ = measure_once(bench, system, bench.url, n, rnd, oe_senders)
            record(bench, sec, system, run_, n)
            bench.results.add(
                sec,
                "idle worker RSS",
                system,
                run_["rss"],
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


def record(bench: Harness, sec: str, system: str, run_: dict[str, float], n: int, suffix: str = "") -> None:
    """The p50 and p99 rows (``suffix`` after their names) of one run."""
    bench.results.add(
        sec,
        f"send→handler latency p50 at {LATENCY_RATE:.0f} events/s{suffix}",
        system,
        run_["p50"],
        "ms",
        higher_is_better=False,
        events=n,
        achieved_send_rate=run_["sent_rate"],
    )
    bench.results.add(
        sec,
        f"send→handler latency p99 at {LATENCY_RATE:.0f} events/s{suffix}",
        system,
        run_["p99"],
        "ms",
        higher_is_better=False,
        events=n,
        max_ms=run_["max_ms"],
    )


def measure_once(
    bench: Harness,
    system: str,
    url: str,
    n: int,
    rnd: int,
    oe_senders: dict[str, Callable[[int], None]],
    idle: float = 1.0,
) -> dict[str, float]:
    """One run: a fresh idle worker (consumer) of ``system`` on ``url`` (the private Redis, or a
    proxy in front of it), the producer on ``url`` too; warm-up, ``idle`` seconds, the idle RSS,
    then n events paced at LATENCY_RATE. Returns p50, p99, max_ms (ms), rss (MiB) and the
    achieved send rate."""
    import event_tasks

    from ..openedx_bus import make_producer, sender
    from ..payload import CERTIFICATE_CREATED, COURSE_KEY
    from ..workers import wait_until

    data = bench.payloads()
    lat = bench.tmp / f"latency-{system}-{uuid.uuid4().hex[:6]}.txt"
    lat.write_text("")
    bench.flush()
    send: Callable[[int], None]
    if system == "ours":
        bench.declare(["latency"])
        bench.send_through(url)
        w = bench.fabric_worker("latency", url, bench.fresh_sqlite("latency"), BENCH_LATENCY_FILE=str(lat))

        def send(i: int) -> None:
            event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
    elif system == "celery":
        bench.plain_queue(bench.url)
        w = bench.plain_worker(url, BENCH_MODE="latency", BENCH_LATENCY_FILE=str(lat))
        send = bench.plain_sender(url)
    else:
        w = bench.openedx_consumer(f"lat{rnd}", "latency", url=url, BENCH_LATENCY_FILE=str(lat))
        if url not in oe_senders:
            oe_senders[url] = sender(make_producer(url))
        send = oe_senders[url]
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
    wait_until(lambda: lines() >= WARMUP_EVENTS, 120, f"{system} to handle the warm-up events", interval=0.05, proc=w)
    time.sleep(idle)
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
    wait_until(lambda: lines() >= WARMUP_EVENTS + n, 300, f"{system} to handle {n} events", interval=0.05, proc=w)
    bench.stop(w)
    if hasattr(send, "close"):
        send.close()
    values = [float(x) * 1000 for x in lat.read_text().split()[WARMUP_EVENTS:]]
    return {
        "p50": pct(values, 0.5),
        "p99": pct(values, 0.99),
        "max_ms": max(values),
        "rss": rss,
        "sent_rate": sent_rate,
    }
