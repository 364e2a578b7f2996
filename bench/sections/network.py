"""Across a network link: a representative subset of the publish, consume, latency and RabbitMQ rows,
each measured twice in the same rounds, on loopback and through a latency proxy (``bench/proxy.py``,
its own process) that delays every chunk by ``BENCH_LINK_DELAY_MS`` (default 0.25 ms) each way.
Every broker URL of every system (producer in the bench process, workers, the Open edX consumer)
points at the proxy; the bench's own watching (queue depths, drain) stays on the broker directly.
The rows are the other sections' own code, parametrised by broker URL."""

from __future__ import annotations

import os
import statistics
import time

from .. import proxy
from ..common import Harness, pct
from . import consume, latency, publish, rabbitmq

NAME = "network"
DELAY_MS = float(os.environ.get("BENCH_LINK_DELAY_MS", proxy.DEFAULT_DELAY_MS))
TITLE = f"Across a {DELAY_MS:g} ms link (proxy)"
TITLES = (TITLE,)
LOOPBACK = ", loopback"
LINK = f", {DELAY_MS:g} ms link"
PUBLISH_EVENTS = {3: 1000, 30: 150}  # subscribed services -> events per run (as in the publish section)
CONSUME_EVENTS = 3000
PINGS = 1000


def describe(bench: Harness) -> None:
    if DELAY_MS != proxy.DEFAULT_DELAY_MS and TITLE in bench.results.reproduce:
        bench.results.reproduce[TITLE] = f"BENCH_LINK_DELAY_MS={DELAY_MS:g} {bench.results.reproduce[TITLE]}"
    subs = ", ".join(f"{k} services: {bench.n(v)}" for k, v in PUBLISH_EVENTS.items())
    bench.results.section(
        TITLE,
        f"Every row twice, in the same rounds (the order rotates): *loopback* (the broker's own port, as "
        f"in the other sections) and *{DELAY_MS:g} ms link*: every broker URL of every system (the "
        f"producer in the bench process, the workers, the Open edX consumer) points at a TCP proxy "
        f"(`python -m bench.proxy`, its own process) that delivers every chunk {DELAY_MS:g} ms after it "
        f"arrived, in each direction (a round trip: at least {2 * DELAY_MS:g} ms more; bytes in order, "
        f"chunks in flight overlap; no bandwidth limit, loss or jitter), one proxy in front of the private "
        f"Redis, one in front of the RabbitMQ port. The bench's own watching (queue depths, drain, fill) "
        f"talks to the brokers directly. The rows are those of *Publish on Redis* (events per run: {subs}), "
        f"*Consume on Redis* (no-op, {bench.n(CONSUME_EVENTS, 100)} pre-filled events), *Latency* "
        f"({bench.n(latency.LATENCY_EVENTS, 100)} events at {latency.LATENCY_RATE:.0f}/s) and *RabbitMQ* "
        f"(publish with confirms: {bench.n(rabbitmq.RABBIT_PUBLISH_EVENTS)} events; consume: "
        f"{bench.n(rabbitmq.RABBIT_CONSUME_EVENTS, 100)}), measured by the same code; "
        f"{bench.rounds} runs per figure.",
    )


def ping_rtt(url: str) -> tuple[float, float]:
    """p50 and p99 (ms) of PING round trips on a fresh redis-py connection to ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
        values = []
        for _ in range(PINGS):
            start = time.perf_counter()
            client.ping()
            values.append((time.perf_counter() - start) * 1000)
    finally:
        client.close()
    return pct(values, 0.5), pct(values, 0.99)


def run(bench: Harness) -> None:
    sec = TITLE
    redis_proxy = proxy.start(bench, proxy.target_of(bench.url, 6379), DELAY_MS, "proxy-redis")
    links = {LOOPBACK: bench.url, LINK: redis_proxy.url(bench.url)}
    rtt = {link: ping_rtt(url) for link, url in links.items()}
    bench.results.note(
        sec,
        f"The link itself: {PINGS} Redis PINGs on one connection, round trip p50 / p99 "
        + "; ".join(f"{link[2:]} {p50:.3f} / {p99:.3f} ms" for link, (p50, p99) in rtt.items())
        + f" (the proxy's thread hand-offs and wake-ups add to the nominal {2 * DELAY_MS:g} ms).",
    )
    try:
        # -- publish on Redis: 3 and 30 subscribed services --
        scenarios = [(f"{s} subscribed services", s, s, bench.n(n)) for s, n in PUBLISH_EVENTS.items()]
        publish.measure(bench, sec, scenarios, links, prefix="publish, ")
        # -- consume on Redis: no-op, duplicate suppression off --
        n = bench.n(CONSUME_EVENTS, 100)
        blobs = {"noop": bench.fill_ours("noop", n), **consume.fill_comparators(bench, n)}
        row = "consume, no-op handler, duplicate suppression off"
        for rnd in range(bench.rounds):
            for link in rotated(links, rnd):
                for system, label in (("noop", "ours"), ("plain", "celery"), ("openedx", "openedx")):
                    secs = consume.drain_once(bench, system, n, blobs, links[link], rnd)
                    bench.results.add(sec, row + link, label, n / secs, "events/s", events=n)
        # -- latency at 200/s --
        n = bench.n(latency.LATENCY_EVENTS, 100)
        oe_senders: dict = {}
        for rnd in range(bench.rounds):
            for link in rotated(links, rnd):
                for system in ("ours", "celery", "openedx"):
                    # no idle RSS row here: a short pause after the warm-up, not the latency section's 1 s
                    result = latency.measure_once(bench, system, links[link], n, rnd, oe_senders, idle=0.2)
                    latency.record(bench, sec, system, result, n, suffix=link)
        bench.send_through(bench.url)
        # -- RabbitMQ: publish with confirms, consume --
        amqp(bench, sec)
    finally:
        bench.send_through(bench.url)
        bench.stop(redis_proxy.proc)
    stats = redis_proxy.stats()
    if stats:
        bench.results.note(sec, proxy_note("Redis", stats))
    slowdowns(bench, sec)


def amqp(bench: Harness, sec: str) -> None:
    from ..brokers import RabbitVhost

    if bench.vhost is None:
        try:
            bench.vhost = RabbitVhost().start()
        except Exception as exc:
            for row in (rabbitmq.PUBLISH_ROW, rabbitmq.CONSUME_ROW):
                for link in (LOOPBACK, LINK):
                    for system in ("ours", "celery"):
                        bench.results.unavailable(
                            sec, f"RabbitMQ {row}{link}", system, f"no RabbitMQ: {exc}", "events/s", "not measured"
                        )
            return
    url = bench.vhost.url
    amqp_proxy = proxy.start(bench, proxy.target_of(url, 5672), DELAY_MS, "proxy-amqp")
    links = {LOOPBACK: url, LINK: amqp_proxy.url(url)}
    try:
        rabbitmq.publish(bench, sec, links, url, systems=("ours", "celery", "kombu"), prefix="RabbitMQ ")
        rabbitmq.consume(bench, sec, links, url, prefix="RabbitMQ ")
    finally:
        bench.stop(amqp_proxy.proc)
    stats = amqp_proxy.stats()
    if stats:
        bench.results.note(sec, proxy_note("RabbitMQ", stats))


def rotated(links: dict[str, str], rnd: int) -> list[str]:
    order = list(links)
    return order[rnd % len(order) :] + order[: rnd % len(order)]


def proxy_note(broker: str, stats: dict[str, str]) -> str:
    return (
        f"The proxy in front of {broker} forwarded {int(stats['chunks']):,} chunks "
        f"({int(stats['bytes']) / 1e6:,.1f} MB) on {stats['connections']} connections; each was written "
        f"{float(stats['late_ms_p50']):.3f} ms (p50), {float(stats['late_ms_p99']):.3f} ms (p99) after its due "
        f"time (arrival + {float(stats['delay_ms']):g} ms)."
    )


def slowdowns(bench: Harness, sec: str) -> None:
    """A note per row pair: each system's median on the link ÷ its median on loopback."""
    from ..results import LABELS

    parts = []
    for (section, name), row in list(bench.results.rows.items()):
        if section != sec or not name.endswith(LOOPBACK):
            continue
        other = bench.results.rows.get((sec, name[: -len(LOOPBACK)] + LINK))
        if other is None:
            continue
        ratios = []
        for system, f in row.figures.items():
            g = other.figures.get(system)
            if f.runs and g is not None and g.runs:
                ratios.append(
                    f"{LABELS.get(system, system)} {statistics.median(g.runs) / statistics.median(f.runs):.2f}"
                )
        if ratios:
            parts.append(f"{name[: -len(LOOPBACK)]}: {', '.join(ratios)}")
    if parts:
        bench.results.note(
            sec,
            f"{DELAY_MS:g} ms link ÷ loopback, medians (below 1: fewer events/s on the link; above 1 for "
            f"latencies: slower): " + "; ".join(parts) + ".",
        )
