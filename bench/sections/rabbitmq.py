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


def run(bench: Harness) -> None:
    from celery import Celery
    from kombu import Connection, Exchange, Producer

    import event_tasks
    from event_tasks.app import install
    from event_tasks.send.publisher import reset_default_publisher

    from ..brokers import RabbitVhost
    from ..payload import CERTIFICATE_CREATED, COURSE_KEY, envelope, task_headers
    from ..workers import wait_until

    sec = "RabbitMQ"
    try:
        bench.vhost = RabbitVhost().start()
    except Exception as exc:
        for row in ("publish, 3 subscribed services", "consume, one `-P solo` worker"):
            for system in ("ours", "celery", "kombu"):
                bench.results.unavailable(sec, row, system, f"no RabbitMQ: {exc}", "events/s", "not measured")
        return
    url = bench.vhost.url
    install(Celery("bench-producer-amqp", broker=url, set_as_current=False))
    reset_default_publisher()
    data = bench.payloads()
    services = ["s00", "s01", "s02"]
    bench.declare(services, url)
    queues = [f"events.{s}" for s in services]
    exchange = Exchange("events", type="topic", durable=True)

    def ours(i: int) -> None:
        event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

    celery = bench.plain_sender(url, confirm=True)
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    conns = {c: Connection(url, transport_options={"confirm_publish": c}) for c in (True, False)}
    producers = {c: Producer(conn.channel()) for c, conn in conns.items()}

    def kombu_send(confirm: bool) -> Callable[[int], None]:
        producer = producers[confirm]

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

    def ours_batch(n: int) -> None:
        for first in range(0, n, BATCH_SIZE):
            event_tasks.send_events(
                [(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY) for i in range(first, min(n, first + BATCH_SIZE))]
            )

    systems = {
        "ours": ours,
        "ours (send_events)": None,
        "celery": celery,
        "kombu": kombu_send(True),
        "kombu (no confirms)": kombu_send(False),
    }
    batch_row = f"`send_events`, batches of {BATCH_SIZE}, 3 subscribed services (publisher confirms)"

    def depths(names: list[str]) -> list[int]:
        with Connection(url) as conn, conn.channel() as ch:
            return [ch.queue_declare(q, passive=True)[1] for q in names]

    def purge(names: list[str]) -> None:
        with Connection(url) as conn, conn.channel() as ch:
            for q in names:
                ch.queue_purge(q)

    for fn in systems.values():
        if fn is not None:
            fn(0)
    time.sleep(0.2)
    purge(queues)
    n = bench.n(RABBIT_PUBLISH_EVENTS)
    row = "publish, 3 subscribed services (publisher confirms)"
    for rnd in range(bench.rounds):
        order = list(systems)
        order = order[rnd % len(order) :] + order[: rnd % len(order)]
        for system in order:
            start = time.perf_counter()
            if systems[system] is None:
                ours_batch(n)
            else:
                for i in range(n):
                    systems[system](i)
            rate = n / (time.perf_counter() - start)
            got = wait_until(
                lambda: (lambda d: d if all(x == n for x in d) else None)(depths(queues)),
                10,
                f"{system}: {n} messages in each queue",
            )
            assert got
            purge(queues)
            if system == "ours (send_events)":
                bench.results.add(
                    sec,
                    batch_row,
                    "ours",
                    rate,
                    "events/s",
                    events=n,
                    note="publish the batch, then wait once for every confirm",
                )
                continue
            if system in ("celery", "kombu"):  # no batch API: their per-event sends of the same rounds
                bench.results.add(
                    sec,
                    batch_row,
                    system,
                    rate,
                    "events/s",
                    events=n,
                    note="no batch API: one confirmed send per event (same rounds)",
                )
            if system == "kombu (no confirms)":
                bench.results.add(
                    sec, "publish, 3 subscribed services, no publisher confirms", "kombu", rate, "events/s", events=n
                )
            else:
                bench.results.add(
                    sec,
                    row,
                    system,
                    rate,
                    "events/s",
                    events=n,
                    note={
                        "ours": "`send_event`: KombuFanout, one publish to the topic exchange, "
                        "confirm awaited per event",
                        "celery": "`send_task` with `broker_transport_options={'confirm_publish': True}`",
                        "kombu": "`Producer.publish` on a connection with `confirm_publish`",
                    }.get(system, ""),
                )
    celery.close()
    for c in conns.values():
        c.release()
    bench.results.unavailable(
        sec,
        "publish, 3 subscribed services, no publisher confirms",
        "ours",
        "event-tasks always publishes with confirms on RabbitMQ",
        "events/s",
    )
    # -- consume --
    n = bench.n(RABBIT_CONSUME_EVENTS, 100)
    with Connection(url) as conn, conn.channel() as ch:
        for q in queues:
            ch.queue_delete(q)
    consume_row = "consume, one `-P solo` worker, no-op handler, duplicate suppression off"
    plain_fill = bench.plain_sender(url)
    for rnd in range(bench.rounds):
        for system in ("ours", "celery"):
            # only the queue being measured is bound while it is filled (both are bound to the type)
            queue = "events.noop" if system == "ours" else "events.plain"
            if system == "ours":
                bench.declare(["noop"], url)
            else:
                bench.plain_queue(url)
            for i in range(n):
                (ours if system == "ours" else plain_fill)(i)
            wait_until(lambda: depths([queue])[0] == n, 30, f"{n} messages in {queue}")
            done = bench.tmp / f"done-{uuid.uuid4().hex[:6]}"
            env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
            if system == "ours":
                w = bench.fabric_worker("noop", url, bench.fresh_sqlite("noop-amqp"), **env)
            else:
                w = bench.plain_worker(url, **env)
            start = wait_until(
                lambda: time.time() if depths([queue])[0] < n else None,
                120,
                f"the first message of {queue}",
                interval=0.002,
                proc=w,
            )
            wait_until(
                lambda: done.exists() and done.read_text(), 600, f"{system} to handle {n} events", interval=0.01, proc=w
            )
            end = float(done.read_text())
            wait_until(lambda: depths([queue])[0] == 0, 30, f"{queue} to be empty", proc=w)
            bench.stop(w)
            with Connection(url) as conn, conn.channel() as ch:
                ch.queue_delete(queue)
            bench.results.add(sec, consume_row, system, n / (end - start), "events/s", events=n)
    plain_fill.close()
    bench.results.unavailable(
        sec,
        consume_row,
        "openedx",
        "the Open edX event bus has no RabbitMQ implementation (Redis Streams and Kafka only)",
        "events/s",
    )
    bench.results.unavailable(sec, row, "openedx", "no RabbitMQ implementation of the Open edX event bus", "events/s")
    bench.results.note(
        sec,
        "Consume end = the wall time at which the handler ran for the last expected event "
        "(written by the handler; its ack follows in the same loop iteration): without the "
        "management plugin AMQP gives no count of unacknowledged messages. Start = the first "
        "time the ready count dropped below the pre-filled count (polled every 2 ms).",
    )
