"""What could not be measured here: rows this machine or these systems cannot give, and why. Not an
``--only`` section: every invocation ends with it."""

from __future__ import annotations

from ..common import Harness

NAME = None  # not an --only section: it always runs, after the others
TITLES = ("What could not be measured here",)


def describe(bench: Harness) -> None:
    r = bench.results
    r.section("What could not be measured here", "Rows this machine or these systems cannot give, and why.")


def run(bench: Harness) -> None:
    sec = "What could not be measured here"
    rows = [
        (
            "Open edX event bus on RabbitMQ",
            "openedx",
            "not measurable",
            "edx-event-bus-redis is Redis Streams only; the other Open edX bus is Kafka (edx-event-bus-kafka), "
            "and there is no Kafka broker here",
        ),
        (
            "publish / consume across machines (network round trips)",
            "ours",
            "measured through a proxy",
            "one 2-core machine, loopback only (~0.05 ms a round trip) and no netem; the network section "
            "(`--only=network`, *Across a 0.25 ms link (proxy)*) measures publish, consume, latency and "
            "RabbitMQ rows through a TCP proxy (`bench/proxy.py`) that delays every chunk 0.25 ms each way. "
            "Still not measured: a real NIC and switch, bandwidth limits, loss, jitter, TLS",
        ),
        (
            "prefork pool, several workers, several services consuming at once",
            "ours",
            "not measurable",
            "2 cores shared by producer, broker, database and workers: a multi-worker throughput figure would "
            "measure CPU contention, not the fabric",
        ),
        (
            "Redis with AOF persistence (`appendfsync everysec`), as production requires",
            "ours",
            "not measurable",
            "the private Redis runs without persistence (like the test suite's private Redis) so that disk does "
            "not dominate; production settings cost more per write for every system alike",
        ),
    ]
    if bench.vhost is None and "rabbitmq" not in bench.sections:
        rows.append(("RabbitMQ rows", "ours", "not measured", "section not selected in this invocation"))
    for name, system, status, why in rows:
        bench.results.unavailable(sec, name, system, why, "", status)
