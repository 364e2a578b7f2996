"""RabbitMQ: a private vhost on the local RabbitMQ; publish with and without publisher confirms, and one
``-P solo`` worker draining pre-filled queues."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from ..common import BATCH_SIZE, Harness

NAME = "rabbitmq"
TITLES = ("RabbitMQ",)
RABBIT_PUBLISH_EVENTS = 300
RABBIT_CONSUME_EVENTS = 500


def describe(bench: Harness) -> None:
    r = bench.results
    rounds = f"{bench.rounds} runs per figure"
    r.section(
        "RabbitMQ",
        f"A private vhost on the local RabbitMQ; 3 queues bound to the type (durable, "
        f"persistent messages); publish: {bench.n(RABBIT_PUBLISH_EVENTS)} events per run from one process; "
        f"consume: one `-P solo` worker, {bench.n(RABBIT_CONSUME_EVENTS)} pre-filled events; {rounds}.",
    )


PUBLISH_SYSTEMS = ("ours", "ours (send_events)", "celery", "kombu", "kombu (no confirms)")
PUBLISH_ROW = "publish, 3 subscribed services (publisher confirms)"
BATCH_ROW = f"`send_events`, batches of {BATCH_SIZE}, 3 subscribed services (publisher confirms)"
NO_CONFIRMS_ROW = "publish, 3 subscribed services, no publisher confirms"
CONSUME_ROW = "consume, one `-P solo` worker, no-op handler, duplicate suppression off"
NOTES = {
    "ours": "`send_event`: KombuFanout, one publish to the topic exchange, confirm awaited per event",
    "celery": "`send_task` with `broker_transport_options={'confirm_publish': True}`",
    "kombu": "`Producer.publish` on a connection with `confirm_publish`",
}


def run(bench: Harness) -> None:
    from ..brokers import RabbitVhost

    sec = "RabbitMQ"
    try:
        bench.vhost = RabbitVhost().start()
    except Exception as exc:
        for row in ("publish, 3 subscribed services", "consume, one `-P solo` worker"):
            for system in ("ours", "celery", "kombu"):
                bench.results.unavailable(sec, row, system, f"no RabbitMQ: {exc}", "events/s", "not measured")
        return
    url = bench.vhost.url
    publish(bench, sec, {"": url}, url)
    bench.results.unavailable(
        sec,
        NO_CONFIRMS_ROW,
        "ours",
        "event-tasks always publishes with confirms on RabbitMQ",
        "events/s",
    )
    consume(bench, sec, {"": url}, url)
    bench.results.unavailable(
        sec,
        CONSUME_ROW,
        "openedx",
        "the Open edX event bus has no RabbitMQ implementation (Redis Streams and Kafka only)",
        "events/s",
    )
    bench.results.unavailable(
        sec, PUBLISH_ROW, "openedx", "no RabbitMQ implementation of the Open edX event bus", "events/s"
    )
    bench.results.note(
        sec,
        "Consume end = the wall time at which the handler ran for the last expected event "
        "(written by the handler; its ack follows in the same loop iteration): without the "
        "management plugin AMQP gives no count of unacknowledged messages. Start = the first "
        "time the ready count dropped below the pre-filled count (polled every 2 ms).",
    )


def depths(admin_url: str, names: list[str]) -> list[int]:
    from kombu import Connection

    with Connection(admin_url) as conn, conn.channel() as ch:
        return [ch.queue_declare(q, passive=True)[1] for q in names]


def purge(admin_url: str, names: list[str]) -> None:
    from kombu import Connection

    with Connection(admin_url) as conn, conn.channel() as ch:
        for q in names:
            ch.queue_purge(q)


def publish(
    bench: Harness,
    sec: str,
    links: dict[str, str],
    admin_url: str,
    systems: tuple[str, ...] = PUBLISH_SYSTEMS,
    prefix: str = "",
) -> None:
    """The publish rows (``prefix + row + link``): 3 queues bound to the type, every system in
    ``systems`` sending through every link (suffix -> AMQP URL of the vhost, directly or through a
    proxy), interleaved round by round; queue depths read and purged on ``admin_url`` directly."""
    from kombu import Connection, Exchange, Producer

    import event_tasks

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY, envelope, task_headers
    from ..workers import wait_until

    data = bench.payloads()
    services = ["s00", "s01", "s02"]
    bench.declare(services, admin_url)
    queues = [f"events.{s}" for s in services]
    exchange = Exchange("events", type="topic", durable=True)
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

    def ours(i: int) -> None:
        event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

    def ours_batch(n: int) -> None:
        for first in range(0, n, BATCH_SIZE):
            event_tasks.send_events(
                [(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY) for i in range(first, min(n, first + BATCH_SIZE))]
            )

    def kombu_send(producer: Producer) -> Callable[[int], None]:
        def send(i: int) -> None:
            env = envelope(i)
            producer.publish(
                [[env, data[i % 16]], {}, embed],
                exchange=exchange,
                routing_key=CERTIFICATE_CREATED,
                declare=[exchange],
                serializer="json",
                delivery_mode=2,
                headers=task_headers(CERTIFICATE_CREATED, env["id"]),
            )

        return send

    senders: dict[str, dict[str, Callable[[int], None] | None]] = {}
    closers: list[Callable[[], None]] = []
    for link, url in links.items():
        celery = bench.plain_sender(url, confirm=True)
        conns = {c: Connection(url, transport_options={"confirm_publish": c}) for c in (True, False)}
        closers += [celery.close, *(c.release for c in conns.values())]  # type: ignore[attr-defined]
        every: dict[str, Callable[[int], None] | None] = {
            "ours": ours,
            "ours (send_events)": None,
            "celery": celery,
            "kombu": kombu_send(Producer(conns[True].channel())),
            "kombu (no confirms)": kombu_send(Producer(conns[False].channel())),
        }
        senders[link] = {system: every[system] for system in systems}
        bench.send_through(url)
        for fn in senders[link].values():
            if fn is not None:
                fn(0)
    time.sleep(0.2)
    purge(admin_url, queues)
    n = bench.n(RABBIT_PUBLISH_EVENTS)
    for rnd in range(bench.rounds):
        link_order = list(links)
        link_order = link_order[rnd % len(link_order) :] + link_order[: rnd % len(link_order)]
        for link in link_order:
            if len(links) > 1:  # send_event (ours) on this link, warmed outside the timing
                bench.send_through(links[link])
                ours(0)
                wait_until(lambda: all(d == 1 for d in depths(admin_url, queues)), 10, "the warm-up event")
                purge(admin_url, queues)
            order = list(senders[link])
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            for system in order:
                fn = senders[link][system]
                start = time.perf_counter()
                if fn is None:
                    ours_batch(n)
                else:
                    for i in range(n):
                        fn(i)
                rate = n / (time.perf_counter() - start)
                got = wait_until(
                    lambda: (lambda d: d if all(x == n for x in d) else None)(depths(admin_url, queues)),
                    10,
                    f"{system}: {n} messages in each queue",
                )
                assert got
                purge(admin_url, queues)
                if system == "ours (send_events)":
                    bench.results.add(
                        sec,
                        prefix + BATCH_ROW + link,
                        "ours",
                        rate,
                        "events/s",
                        events=n,
                        note="publish the batch, then wait once for every confirm",
                    )
                    continue
                if system in ("celery", "kombu") and "ours (send_events)" in systems:
                    # no batch API: their per-event sends of the same rounds
                    bench.results.add(
                        sec,
                        prefix + BATCH_ROW + link,
                        system,
                        rate,
                        "events/s",
                        events=n,
                        note="no batch API: one confirmed send per event (same rounds)",
                    )
                if system == "kombu (no confirms)":
                    bench.results.add(sec, prefix + NO_CONFIRMS_ROW + link, "kombu", rate, "events/s", events=n)
                else:
                    bench.results.add(
                        sec, prefix + PUBLISH_ROW + link, system, rate, "events/s", events=n, note=NOTES[system]
                    )
    for close in closers:
        close()
    with Connection(admin_url) as conn, conn.channel() as ch:
        for q in queues:
            ch.queue_delete(q)


def consume(bench: Harness, sec: str, links: dict[str, str], admin_url: str, prefix: str = "") -> None:
    """The consume row (``prefix + row + link``): one ``-P solo`` worker of ours and of plain
    Celery on every link draining pre-filled queues (filled, watched and deleted on ``admin_url``)."""
    from kombu import Connection

    import event_tasks

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY
    from ..workers import wait_until

    data = bench.payloads()
    n = bench.n(RABBIT_CONSUME_EVENTS, 100)
    bench.send_through(admin_url)  # the queues are filled directly
    plain_fill = bench.plain_sender(admin_url)

    def ours(i: int) -> None:
        event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

    for rnd in range(bench.rounds):
        link_order = list(links)
        link_order = link_order[rnd % len(link_order) :] + link_order[: rnd % len(link_order)]
        for link in link_order:
            url = links[link]
            for system in ("ours", "celery"):
                # only the queue being measured is bound while it is filled (both are bound to the type)
                queue = "events.noop" if system == "ours" else "events.plain"
                if system == "ours":
                    bench.declare(["noop"], admin_url)
                else:
                    bench.plain_queue(admin_url)
                for i in range(n):
                    (ours if system == "ours" else plain_fill)(i)
                wait_until(lambda: depths(admin_url, [queue])[0] == n, 30, f"{n} messages in {queue}")
                done = bench.tmp / f"done-{uuid.uuid4().hex[:6]}"
                env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
                if system == "ours":
                    w = bench.fabric_worker("noop", url, bench.fresh_sqlite("noop-amqp"), **env)
                else:
                    w = bench.plain_worker(url, **env)
                start = wait_until(
                    lambda: time.time() if depths(admin_url, [queue])[0] < n else None,
                    120,
                    f"the first message of {queue}",
                    interval=0.002,
                    proc=w,
                )
                wait_until(
                    lambda: done.exists() and done.read_text(),
                    600,
                    f"{system} to handle {n} events",
                    interval=0.01,
                    proc=w,
                )
                end = float(done.read_text())
                wait_until(lambda: depths(admin_url, [queue])[0] == 0, 30, f"{queue} to be empty", proc=w)
                bench.stop(w)
                with Connection(admin_url) as conn, conn.channel() as ch:
                    ch.queue_delete(queue)
                bench.results.add(sec, prefix + CONSUME_ROW + link, system, n / (end - start), "events/s", events=n)
    plain_fill.close()  # type: ignore[attr-defined]
