"""Send and consume rates of event-tasks' openedx-events backend next to edx-event-bus-redis, on one
private Redis: ``python -m bench.openedx_backend [--events 2000] [--rounds 3]``.

Both systems carry the same signal (``CERTIFICATE_CREATED``, the bench's ``CertificateData``):

* send: ``producer.send(signal=…, event_data=…, event_metadata=…)`` in this process, the call
  openedx-events makes for each enabled topic (``bench.openedx_bus.sender``), with
  ``event_tasks.openedx.create_producer()`` (validation, JSON envelope, one copy to the one
  subscribed queue ``events.oeconsumer``) and with edx-event-bus-redis' ``create_producer()``
  (Avro, one ``XADD``); events/s of one thread;
* consume: the same ``--events`` pre-filled (DUMP/RESTORE per round), drained by one process each:
  ours ``celery -A config.celery_app worker -Q events.oeconsumer -P solo`` (``bench/openedx_settings``:
  the re-emitting handler, duplicate suppression on, SQLite), theirs ``RedisEventConsumer.
  consume_indefinitely`` (``python -m bench.openedx_bus consume``); a no-op receiver each. Time from
  the first message taken until the queue/stream is drained and acknowledged.

Every figure is the median of the rounds with min–max; systems alternate within a round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "oeconsumer"
SETTINGS = "bench.openedx_settings"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from .brokers import PrivateRedis

    tmp = Path(tempfile.mkdtemp(prefix="et-oe-bench-"))
    redis = PrivateRedis().start()
    procs = []
    try:
        run(args, redis, tmp, procs)
    finally:
        for p in procs:
            p.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, redis, tmp: Path, procs: list) -> None:
    url = redis.url
    client = redis.client()
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": f"sqlite:///{tmp / 'producer.sqlite3'}",
            "EVENT_TASKS_SERVICE": "lms",
            "EVENT_TASKS_CONSUMERS_PACKAGE": "bench.services",
            "EVENT_TASKS_SCHEMAS_PACKAGE": "event_tasks.openedx.catalog",
        }
    )
    import django

    django.setup()
    from celery import Celery
    from kombu import Connection

    from event_tasks.app import install
    from event_tasks.brokers.topology import declare, service_queue
    from event_tasks.openedx import create_producer

    from .openedx_bus import TOPIC, make_producer, sender
    from .payload import CERTIFICATE_CREATED
    from .workers import PY, Proc, drain_redis_lists, drain_stream, fabric_env, manage, worker_command

    install(Celery("bench-oe-producer", broker=url, set_as_current=False))
    n = args.events
    queue = f"events.{SERVICE}"

    def fill_ours(send) -> bytes:
        client.flushall()
        with Connection(url) as conn:
            declare(conn, [service_queue(SERVICE, [CERTIFICATE_CREATED])])
        for i in range(n):
            send(i)
        assert client.llen(queue) == n, client.llen(queue)
        return client.dump(queue)

    systems = {"event-tasks": sender(create_producer()), "edx-event-bus-redis": sender(make_producer(url))}
    send_rates: dict[str, list[float]] = {s: [] for s in systems}
    for rnd in range(args.rounds):
        for name in list(systems) if rnd % 2 == 0 else list(systems)[::-1]:
            send = systems[name]
            client.flushall()
            with Connection(url) as conn:
                declare(conn, [service_queue(SERVICE, [CERTIFICATE_CREATED])])
            for i in range(20):  # warm-up: connections, scripts, schemas
                send(i)
            start = time.perf_counter()
            for i in range(n):
                send(i)
            send_rates[name].append(n / (time.perf_counter() - start))
            depth = client.llen(queue) if name == "event-tasks" else client.xlen(TOPIC)
            assert depth == n + 20, (name, depth)

    ours_blob = fill_ours(systems["event-tasks"])
    client.flushall()
    for i in range(n):
        systems["edx-event-bus-redis"](i)
    theirs_blob = client.dump(TOPIC)
    template = tmp / "template.sqlite3"
    manage(fabric_env(None, url, f"sqlite:///{template}", DJANGO_SETTINGS_MODULE=SETTINGS), "migrate", "-v", "0")

    consume_rates: dict[str, list[float]] = {"event-tasks": [], "edx-event-bus-redis": []}
    for rnd in range(args.rounds):
        for name in list(consume_rates) if rnd % 2 == 0 else list(consume_rates)[::-1]:
            done = tmp / f"done-{uuid.uuid4().hex[:6]}"
            env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
            client.flushall()
            if name == "event-tasks":
                client.restore(queue, 0, ours_blob, replace=True)
                with Connection(url) as conn:
                    declare(conn, [service_queue(SERVICE, [CERTIFICATE_CREATED])])
                db = tmp / f"{SERVICE}-{uuid.uuid4().hex[:6]}.sqlite3"
                shutil.copy(template, db)
                e = fabric_env(SERVICE, url, f"sqlite:///{db}", DJANGO_SETTINGS_MODULE=SETTINGS, **env)
                e["EVENT_TASKS_SCHEMAS_PACKAGE"] = "event_tasks.openedx.catalog"
                w = Proc(worker_command("config.celery_app", queue, SERVICE), e, tmp / f"w-{rnd}.log").start()
                procs.append(w)
                secs = drain_redis_lists(
                    client, n, w, queue=queue, extra_lists=(queue + "\x06\x16inflight",), unacked=(f"unacked:{queue}",)
                )
            else:
                client.restore(TOPIC, 0, theirs_blob, replace=True)
                e = fabric_env(None, url, "sqlite:///unused", **env)
                for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL"):
                    e.pop(k, None)
                group = f"svc{rnd}"
                w = Proc(
                    [PY, "-m", "bench.openedx_bus", "consume", "--url", url, "--group", group, "--mode", "noop"],
                    e,
                    tmp / f"c-{rnd}.log",
                ).start()
                procs.append(w)
                secs = drain_stream(client, TOPIC, group, w)
            w.stop()
            procs.remove(w)
            if not done.exists():
                raise RuntimeError(f"{name}: the receiver did not run {n} times; log:\n{w.output()[-3000:]}")
            consume_rates[name].append(n / secs)

    in_process = handler_cost(n)
    print(
        f"# {n} CERTIFICATE_CREATED events, {args.rounds} rounds, private redis-server {redis.version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"# command: python -m bench.openedx_backend --events {n} --rounds {args.rounds}")
    for title, rates in (
        ("send (events/s, one thread)", send_rates),
        ("consume (events/s, one process)", consume_rates),
    ):
        print(title)
        for name, values in rates.items():
            print(
                f"  {name:22s} median {statistics.median(values):8.0f}   min {min(values):8.0f}   "
                f"max {max(values):8.0f}"
            )
        ours, theirs = statistics.median(rates["event-tasks"]), statistics.median(rates["edx-event-bus-redis"])
        print(f"  ratio event-tasks / edx-event-bus-redis: {ours / theirs:.2f}")
    print(
        f"in process, per event: the worker's decoding + validation (delivery.read_event) and the re-emitting "
        f"handler to a no-op receiver: {in_process * 1e6:.0f} µs (the rest of a delivery is the fabric's)"
    )


def handler_cost(n: int) -> float:
    """Seconds per event of ``read_event`` + ``reemit`` in this process (no broker, no database)."""
    import json

    from event_tasks.consume.delivery import read_event
    from event_tasks.openedx import create_producer
    from event_tasks.openedx.handlers import reemit
    from event_tasks.send import publisher
    from event_tasks.testing import capture_events

    from .openedx_bus import sender

    with capture_events(service="lms"):
        sender(create_producer())(0)
        body = publisher.default_publisher().transport.bodies[0][1]
    args, _, _ = json.loads(body)
    event_type = args[0]["type"]
    start = time.perf_counter()
    for _ in range(n):
        reemit(read_event(event_type, tuple(args), {}))
    return (time.perf_counter() - start) / n


if __name__ == "__main__":
    main()
