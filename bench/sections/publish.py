"""Publish on Redis, and Batch publish on Redis (measured in the same rounds as the 3-services
row): events/s of one producer thread, every system on the same private redis-server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..common import BATCH_SIZE, Harness

NAME = "publish"
TITLES = ("Publish on Redis", "Batch publish on Redis")
PUBLISH_EVENTS = {1: 1000, 3: 1000, 10: 400, 30: 150}  # subscribed services -> events per run
BINDINGS_EVENTS = {10: 1000, 100: 500, 1000: 150}  # bindings in the table -> events per run


def describe(bench: Harness) -> None:
    r = bench.results
    rounds = f"{bench.rounds} runs per figure"
    r.section(
        "Publish on Redis",
        f"Events/s of one producer process (in-process, one thread) on a private "
        f"redis-server, every system publishing the same certificate event; {rounds}. *Subscribed "
        f"services*: that many queues bound to the type; *bindings*: the subscription table holds that many "
        f"bindings, 3 of which match. Events per run: {sizes_text(bench)}.",
    )
    r.section(
        "Batch publish on Redis",
        f"`event_tasks.send_events(items)` in calls of {BATCH_SIZE} events, 3 "
        f"subscribed services; {rounds}. The comparators have no batch API: their figures are their "
        f"per-event sends of the 3-services row, measured in the same rounds.",
    )


def sizes_text(bench: Harness) -> str:
    subs = ", ".join(f"{k} services: {bench.n(v)}" for k, v in PUBLISH_EVENTS.items())
    binds = ", ".join(f"{k} bindings: {bench.n(v)}" for k, v in BINDINGS_EVENTS.items())
    return f"{subs}; {binds}"


def publishers(bench: Harness, url: str | None = None) -> tuple[dict[str, Callable[[int], None]], Any]:
    """One ``send(i)`` per system on ``url`` (default: the private Redis), built once (connections,
    scripts, producers outside the timing), and the function that releases plain Celery's producer
    after the section. ``ours`` is ``send_event``: the caller points it at ``url``
    (``bench.send_through``)."""
    url = url or bench.url
    from kombu import Connection, Exchange, Producer

    import event_tasks

    from .. import openedx_bus
    from ..payload import CERTIFICATE_CREATED, COURSE_KEY, envelope, task_headers

    data = bench.payloads()
    exchange = Exchange("events", type="topic", durable=True)
    send_event = event_tasks.send_event

    def ours(i: int) -> None:
        send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

    celery = bench.plain_sender(url)  # plain Celery's send_task on its own producer

    conn = Connection(url)
    kombu_producer = Producer(conn.channel())
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

    def kombu(i: int) -> None:
        env = envelope(i)
        kombu_producer.publish(
            [[env, data[i % 16]], {}, embed],
            exchange=exchange,
            routing_key=CERTIFICATE_CREATED,
            declare=[exchange],
            serializer="json",
            delivery_mode=2,
            headers=task_headers(CERTIFICATE_CREATED, env["id"]),
        )

    openedx = openedx_bus.sender(openedx_bus.make_producer(url))

    def close() -> None:
        celery.close()  # type: ignore[attr-defined]
        conn.release()

    return {"ours": ours, "celery": celery, "kombu": kombu, "openedx": openedx}, close


def setup_table(bench: Harness, subscribed: int, bindings: int) -> list[str]:
    """Flush, then bind ``subscribed`` queues to the type and enough other bindings to make ``bindings``."""
    from kombu import Connection, Exchange, Queue, binding

    bench.flush()
    services = [f"s{k:02d}" for k in range(subscribed)]
    bench.declare(services)
    others = max(0, bindings - subscribed)
    if others:
        exchange = Exchange("events", type="topic", durable=True)
        per_queue = 5
        with Connection(bench.url) as conn, conn.channel() as ch:
            for q in range((others + per_queue - 1) // per_queue):
                keys = []
                for k in range(q * per_queue, min(others, (q + 1) * per_queue)):
                    # other services' subscriptions: mostly exact types, some patterns
                    keys.append(
                        f"org.openedx.domain{k}.#" if k % 3 == 0 else f"org.openedx.learning.thing{k}.changed.v1"
                    )
                Queue(
                    f"events.other{q:03d}", bindings=[binding(exchange, routing_key=key) for key in keys], durable=True
                )(ch).declare()
    table = bench.client.scard("_kombu.binding.events")
    assert table == max(bindings, subscribed), (table, bindings)
    return [f"events.{s}" for s in services]


def commands(bench: Harness) -> int:
    stats = bench.client.info("commandstats")
    return sum(
        v["calls"]
        for k, v in stats.items()
        if k not in ("cmdstat_info", "cmdstat_llen", "cmdstat_xlen", "cmdstat_del", "cmdstat_ping")
    )


def clear_published(bench: Harness, queues: list[str]) -> None:
    from ..openedx_bus import TOPIC

    bench.client.delete(*queues, TOPIC)


def check_published(bench: Harness, system: str, queues: list[str], n: int) -> None:
    from ..openedx_bus import TOPIC

    if system == "openedx":
        got = bench.client.xlen(TOPIC)
        assert got == n, f"Open edX stream holds {got} entries, expected {n}"
        return
    depths = [bench.client.llen(q) for q in queues]
    assert all(d == n for d in depths), f"{system}: queue depths {depths}, expected {n} each"


def run(bench: Harness) -> None:
    sec = "Publish on Redis"
    scenarios = [
        (f"{s} subscribed service{'s' if s > 1 else ''}", s, s, bench.n(PUBLISH_EVENTS[s])) for s in PUBLISH_EVENTS
    ]
    scenarios += [
        (f"{b:,} bindings in the table (3 match)", 3, b, bench.n(BINDINGS_EVENTS[b])) for b in BINDINGS_EVENTS
    ]
    measure(bench, sec, scenarios, {"": bench.url}, batch_sec="Batch publish on Redis")
    bench.results.note(
        sec,
        "event-tasks validates every payload against the catalog schema (its compiled codec: "
        "marshmallow's fields without the schema machinery, decision 0012) and pushes one copy "
        "per subscribed queue with one Lua script (EVALSHA), which finds the type's queues in the "
        "routes it keeps beside the binding set (worked out again when the set changes, decision "
        "0014); plain "
        "Celery and kombu route through kombu's topic exchange on Redis (SMEMBERS of the binding "
        "table, then one LPUSH round trip per matching queue) and validate nothing; the Open edX "
        "bus serializes with Avro and does one XADD per event whatever the number of consumers "
        "(each consuming service is a consumer group on one stream).",
    )
    bench.results.note(
        sec,
        "The Open edX producer swallows publish errors (it logs them and returns): its figure "
        "is for sends that were not confirmed to the caller; the counts were checked after "
        "every run for every system.",
    )


def measure(
    bench: Harness,
    sec: str,
    scenarios: list[tuple[str, int, int, int]],
    links: dict[str, str],
    batch_sec: str | None = None,
    prefix: str = "",
) -> None:
    """Rows ``prefix + label + link`` of ``sec``: each scenario (label, subscribed, bindings, events
    per run) published by every system through every link (suffix -> broker URL of the private
    Redis, directly or through a proxy), interleaved round by round. With ``batch_sec``, the
    3-services scenario also measures ``send_events`` there. Queue depths and command counts are
    read on the private Redis directly."""
    import event_tasks
    import event_tasks.send.publisher

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY

    send_events = getattr(event_tasks, "send_events", None) or getattr(event_tasks.send.publisher, "send_events", None)
    batch_row = f"{prefix}batches of {BATCH_SIZE}, 3 subscribed services"
    senders = {link: publishers(bench, url) for link, url in links.items()}
    data = bench.payloads()
    for label, subscribed, bindings, n in scenarios:
        queues = setup_table(bench, subscribed, bindings)
        for link, url in links.items():
            bench.send_through(url)
            for fn in senders[link][0].values():  # warm every path on this table
                fn(0)
        clear_published(bench, queues)
        with_batch = batch_sec is not None and send_events is not None and label.startswith("3 subscribed")
        for rnd in range(bench.rounds):
            link_order = list(links)
            link_order = link_order[rnd % len(link_order) :] + link_order[: rnd % len(link_order)]
            for link in link_order:
                send = senders[link][0]
                if len(links) > 1:  # send_event (ours) on this link, warmed outside the timing
                    bench.send_through(links[link])
                    send["ours"](0)
                    clear_published(bench, queues)
                order = list(send)
                order = order[rnd % len(order) :] + order[: rnd % len(order)]
                if with_batch:
                    order.append("ours-batch")
                for system in order:
                    before = commands(bench)
                    start = time.perf_counter()
                    if system == "ours-batch":
                        assert send_events is not None
                        for offset in range(0, n, BATCH_SIZE):
                            send_events(
                                [
                                    (CERTIFICATE_CREATED, data[i % 16], COURSE_KEY)
                                    for i in range(offset, min(n, offset + BATCH_SIZE))
                                ]
                            )
                    else:
                        fn = send[system]
                        for i in range(n):
                            fn(i)
                    rate = n / (time.perf_counter() - start)
                    per_event = (commands(bench) - before) / n
                    check_published(bench, "ours" if system == "ours-batch" else system, queues, n)
                    clear_published(bench, queues)
                    if system == "ours-batch":
                        assert batch_sec is not None
                        bench.results.add(
                            batch_sec,
                            batch_row + link,
                            "ours",
                            rate,
                            "events/s",
                            events=n,
                            redis_commands_per_event=per_event,
                        )
                    else:
                        bench.results.add(
                            sec,
                            prefix + label + link,
                            system,
                            rate,
                            "events/s",
                            events=n,
                            redis_commands_per_event=per_event,
                        )
        if with_batch:
            assert batch_sec is not None
            for link in links:
                row = bench.results.row(sec, prefix + label + link, "events/s")
                for system in ("celery", "kombu", "openedx"):
                    f = row.figures[system]
                    for v in f.runs:
                        bench.results.add(
                            batch_sec,
                            batch_row + link,
                            system,
                            v,
                            "events/s",
                            note="no batch API: one send per event (the 3-services row's figures of the same rounds)",
                        )
    for _, close in senders.values():
        close()
    bench.send_through(bench.url)
    if batch_sec is not None and send_events is None:
        for link in links:
            bench.results.unavailable(
                batch_sec,
                batch_row + link,
                "ours",
                "`event_tasks.send_events` does not exist in this checkout (being added)",
                "events/s",
            )
