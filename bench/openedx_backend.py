"""Send and consume rates of event-tasks' openedx-events backend next to edx-event-bus-redis, on one
private Redis: ``python -m bench.openedx_backend [--events 2000] [--rounds 3]``; the ``openedx``
section of ``python -m bench`` runs it (``--json --url``: on the bench's private Redis, its figures
as one JSON line).

It runs in a process of its own: its Django settings (``bench.openedx_settings``) name the openedx
catalog (``event_tasks.openedx.catalog``), which cannot be combined with the bench's ``schemas``.
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
  the first message taken until the queue/stream is drained and acknowledged; the run fails unless
  the receiver ran for every event, with no dead letter and one duplicate mark per event.

Every figure is the median of the rounds with min–max; systems alternate within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "oeconsumer"
SETTINGS = "bench.openedx_settings"
SYSTEMS = ("event-tasks", "edx-event-bus-redis")


class Backend:
    """This process set up as the bench's Open edX producer service on a private Redis (its own, or ``url``)."""

    def __init__(self, url: str | None = None) -> None:
        self.given_url = url
        self.redis: Any = None
        self.tmp = Path(tempfile.mkdtemp(prefix="et-oe-bench-"))
        self.procs: list[Any] = []
        self._template: Path | None = None

    def start(self) -> Backend:
        sys.path.insert(0, str(ROOT))
        if self.given_url is None:
            from .brokers import PrivateRedis

            self.redis = PrivateRedis().start()
            self.url = self.redis.url
        else:
            self.url = self.given_url
        import redis

        self.client = redis.Redis.from_url(self.url)
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": SETTINGS,
                "DATABASE_URL": f"sqlite:///{self.tmp / 'producer.sqlite3'}",
                "EVENT_TASKS_SERVICE": "lms",
                "EVENT_TASKS_CONSUMERS_PACKAGE": "bench.services",
                "EVENT_TASKS_SCHEMAS_PACKAGE": "event_tasks.openedx.catalog",
            }
        )
        import django

        django.setup()
        from celery import Celery

        from event_tasks.app import install

        install(Celery("bench-oe-producer", broker=self.url, set_as_current=False))
        return self

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def declare(self) -> None:
        from kombu import Connection

        from event_tasks.brokers.topology import declare, service_queue

        from .payload import CERTIFICATE_CREATED

        with Connection(self.url) as conn:
            declare(conn, [service_queue(SERVICE, [CERTIFICATE_CREATED])])

    def senders(self) -> dict[str, Any]:
        from event_tasks.openedx import create_producer

        from .openedx_bus import make_producer, sender

        return {"event-tasks": sender(create_producer()), "edx-event-bus-redis": sender(make_producer(self.url))}

    def fill_ours(self, n: int, send: Any = None) -> bytes:
        """``events.oeconsumer`` pre-filled with n events through the backend's producer; its DUMP."""
        send = send or self.senders()["event-tasks"]
        queue = f"events.{SERVICE}"
        self.client.flushall()
        self.declare()
        for i in range(n):
            send(i)
        assert self.client.llen(queue) == n, self.client.llen(queue)
        return bytes(self.client.dump(queue))

    def fresh_db(self) -> str:
        """A fresh copy of a migrated SQLite database for one worker run."""
        from .workers import fabric_env, manage

        if self._template is None:
            self._template = self.tmp / "template.sqlite3"
            env = fabric_env(None, self.url, f"sqlite:///{self._template}", DJANGO_SETTINGS_MODULE=SETTINGS)
            manage(env, "migrate", "-v", "0")
        db = self.tmp / f"{SERVICE}-{uuid.uuid4().hex[:6]}.sqlite3"
        shutil.copy(self._template, db)
        return f"sqlite:///{db}"

    # -- the figures ------------------------------------------------------------------------------
    def measure_send(self, n: int, rounds: int) -> dict[str, list[float]]:
        from .openedx_bus import TOPIC

        systems = self.senders()
        queue = f"events.{SERVICE}"
        rates: dict[str, list[float]] = {s: [] for s in systems}
        for rnd in range(rounds):
            for name in list(systems) if rnd % 2 == 0 else list(systems)[::-1]:
                send = systems[name]
                self.client.flushall()
                self.declare()
                for i in range(20):  # warm-up: connections, scripts, schemas
                    send(i)
                start = time.perf_counter()
                for i in range(n):
                    send(i)
                rates[name].append(n / (time.perf_counter() - start))
                depth = self.client.llen(queue) if name == "event-tasks" else self.client.xlen(TOPIC)
                assert depth == n + 20, (name, depth)
        return rates

    def measure_consume(self, n: int, rounds: int) -> dict[str, list[float]]:
        from .openedx_bus import TOPIC
        from .workers import PY, Proc, drain_redis_lists, drain_stream, fabric_env, worker_command

        systems = self.senders()
        ours_blob = self.fill_ours(n, systems["event-tasks"])
        self.client.flushall()
        for i in range(n):
            systems["edx-event-bus-redis"](i)
        theirs_blob = self.client.dump(TOPIC)
        queue = f"events.{SERVICE}"
        rates: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        for rnd in range(rounds):
            for name in list(SYSTEMS) if rnd % 2 == 0 else list(SYSTEMS)[::-1]:
                done = self.tmp / f"done-{uuid.uuid4().hex[:6]}"
                env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
                self.client.flushall()
                if name == "event-tasks":
                    self.client.restore(queue, 0, ours_blob, replace=True)
                    self.declare()
                    db = self.fresh_db()
                    e = fabric_env(SERVICE, self.url, db, DJANGO_SETTINGS_MODULE=SETTINGS, **env)
                    e["EVENT_TASKS_SCHEMAS_PACKAGE"] = "event_tasks.openedx.catalog"
                    w = Proc(worker_command("config.celery_app", queue, SERVICE), e, self.tmp / f"w-{rnd}.log")
                    self.procs.append(w.start())
                    secs = drain_redis_lists(
                        self.client,
                        n,
                        w,
                        queue=queue,
                        extra_lists=(queue + "\x06\x16inflight",),
                        unacked=(f"unacked:{queue}",),
                    )
                else:
                    self.client.restore(TOPIC, 0, theirs_blob, replace=True)
                    e = fabric_env(None, self.url, "sqlite:///unused", **env)
                    for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL"):
                        e.pop(k, None)
                    group = f"svc{rnd}"
                    command = [PY, "-m", "bench.openedx_bus", "consume", "--url", self.url, "--group", group]
                    w = Proc([*command, "--mode", "noop"], e, self.tmp / f"c-{rnd}.log")
                    self.procs.append(w.start())
                    secs = drain_stream(self.client, TOPIC, group, w)
                w.stop()
                self.procs.remove(w)
                if not done.exists():
                    raise RuntimeError(f"{name}: the receiver did not run {n} times; log:\n{w.output()[-3000:]}")
                if name == "event-tasks":
                    self.check_db(db, n)
                rates[name].append(n / secs)
        return rates

    @staticmethod
    def check_db(db_url: str, n: int) -> None:
        import sqlite3

        con = sqlite3.connect(db_url[len("sqlite:///") :], timeout=30)
        try:
            dead = con.execute("SELECT count(*) FROM event_tasks_deadletter").fetchone()[0]
            marks = con.execute("SELECT count(*) FROM event_tasks_processedevent").fetchone()[0]
        finally:
            con.close()
        assert dead == 0, f"{dead} dead letters"
        assert marks == n, f"{marks} duplicate marks, expected {n}"


def handler_cost(n: int) -> float:
    """Seconds per event of ``read_event`` + ``reemit`` in this process (no broker, no database)."""
    from event_tasks.consume.delivery import read_event
    from event_tasks.openedx import create_producer
    from event_tasks.openedx.handlers import reemit
    from event_tasks.send import publisher
    from event_tasks.testing import capture_events

    from .openedx_bus import sender

    with capture_events(service="lms"):
        sender(create_producer())(0)
        body = publisher.default_publisher().transport.bodies[0][1]  # type: ignore[attr-defined]
    args, _, _ = json.loads(body)
    event_type = args[0]["type"]
    for _ in range(20):
        reemit(read_event(event_type, tuple(args), {}))
    start = time.perf_counter()
    for _ in range(n):
        reemit(read_event(event_type, tuple(args), {}))
    return (time.perf_counter() - start) / n


def measure(backend: Backend, events: int, rounds: int) -> dict[str, Any]:
    """Every figure of one invocation: send and consume runs per system, the in-process handler cost."""
    send = backend.measure_send(events, rounds)
    consume = backend.measure_consume(events, rounds)
    return {
        "events": events,
        "rounds": rounds,
        "send": send,
        "consume": consume,
        "handler_us": handler_cost(min(events, 2000)) * 1e6,
        "redis": backend.version(),
    }


def report(figures: dict[str, Any]) -> None:
    n, rounds = figures["events"], figures["rounds"]
    print(
        f"# {n} CERTIFICATE_CREATED events, {rounds} rounds, private redis-server {figures['redis']}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"# command: python -m bench.openedx_backend --events {n} --rounds {rounds}")
    for title, key in (("send (events/s, one thread)", "send"), ("consume (events/s, one process)", "consume")):
        rates = figures[key]
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
        f"handler to a no-op receiver: {figures['handler_us']:.0f} µs (the rest of a delivery is the fabric's)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a private Redis to use (default: start one); it is flushed")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    backend = Backend(args.url).start()
    try:
        figures = measure(backend, args.events, args.rounds)
    finally:
        backend.stop()
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures)


if __name__ == "__main__":
    main()
