"""``python -m bench``: every benchmark row, our figure beside plain Celery, plain kombu and the
Open edX Redis event bus, measured in the same invocation. See bench/README.md."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import inspect
import json
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SECTIONS = ("publish", "consume", "latency", "outbox", "rabbitmq")

# --- sizes (scaled by --scale) -----------------------------------------------------------------
PUBLISH_EVENTS = {1: 1000, 3: 1000, 10: 400, 30: 150}          # subscribed services -> events per run
BINDINGS_EVENTS = {10: 1000, 100: 500, 1000: 150}               # bindings in the table -> events per run
BATCH_SIZE = 100
CONSUME_EVENTS = 3000
LATENCY_EVENTS = 400
LATENCY_RATE = 200.0
OUTBOX_EVENTS = 300
OUTBOX_PENDING = 600
RABBIT_PUBLISH_EVENTS = 300
RABBIT_CONSUME_EVENTS = 500
WARMUP_EVENTS = 20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (default 3; the median is reported)")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count (development: 0.1)")
    parser.add_argument("--out", help="where RESULTS.md and results.jsonl go (default: bench/ for a full "
                                      "run at scale 1, else a temporary directory)")
    args = parser.parse_args(argv)
    sections = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.rounds < 3:
        print("warning: fewer than 3 runs per figure", file=sys.stderr)
    full = sections == list(SECTIONS) and args.scale == 1.0 and args.rounds >= 3
    out_dir = Path(args.out) if args.out else (BENCH if full else Path(tempfile.mkdtemp(prefix="et-bench-out-")))
    out_dir.mkdir(parents=True, exist_ok=True)
    Bench(args.rounds, args.scale, sections, out_dir, argv if argv is not None else sys.argv[1:]).run()


def python_cmd() -> str:
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else str(exe)
    except ValueError:
        return str(exe)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Bench:
    def __init__(self, rounds: int, scale: float, sections: list[str], out_dir: Path, argv: list[str]) -> None:
        self.rounds = rounds
        self.scale = scale
        self.sections = sections
        self.out_dir = out_dir
        self.command = shlex.join([python_cmd(), "-m", "bench", *argv])
        base = [python_cmd(), "-m", "bench"] + ([f"--rounds={rounds}"] if rounds != 3 else []) + \
               ([f"--scale={scale:g}"] if scale != 1.0 else [])
        self.tmp = Path(tempfile.mkdtemp(prefix="et-bench-"))
        from .results import Results

        reproduce = {}
        for title, section in (("Publish on Redis", "publish"), ("Batch publish on Redis", "publish"),
                               ("Consume on Redis", "consume"), ("Latency and memory on Redis", "latency"),
                               ("Outbox relay vs direct sends", "outbox"), ("RabbitMQ", "rabbitmq"),
                               ("What could not be measured here", "")):
            if section:
                reproduce[title] = shlex.join([*base, f"--only={section}"])
        self.results = Results(self.command, reproduce)
        self.redis = None
        self.pg = None
        self.vhost = None
        self.procs: list[Any] = []

    def n(self, count: int, floor: int = 50) -> int:
        return max(floor, int(count * self.scale))

    # -- set-up -----------------------------------------------------------------------------------
    def setup(self) -> None:
        from .brokers import PrivateRedis

        self.redis = PrivateRedis().start()
        self.url = self.redis.url
        self.client = self.redis.client()
        os.environ.pop("CELERY_BROKER_URL", None)   # Celery would prefer it to every app's own broker
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench-process.sqlite3'}", "EVENT_TASKS_SERVICE": "lms",
            "EVENT_TASKS_CONSUMERS_PACKAGE": "bench.services", "EVENT_TASKS_SCHEMAS_PACKAGE": "schemas",
        })
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from celery import Celery

        from event_tasks.app import install

        self.fabric_app = install(Celery("bench-producer", broker=self.url, set_as_current=False))

    def teardown(self) -> None:
        for p in self.procs:
            try:
                p.stop()
            except Exception:  # noqa: BLE001
                pass
        for thing in (self.vhost, self.pg, self.redis):
            if thing is not None:
                try:
                    thing.stop()
                except Exception as exc:  # noqa: BLE001
                    print(f"cleanup of {thing!r} failed: {exc}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def code_state() -> dict[str, Any]:
        """The code measured: HEAD, uncommitted changes, and a digest of the library, config and catalog files."""
        import hashlib

        def git(*args: str) -> str:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
            return out.stdout.strip() if out.returncode == 0 else "?"

        digest = hashlib.sha1()
        for folder in ("event_tasks", "config", "schemas", "bench"):
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and path.suffix in (".py", ".lua", ".json") and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(ROOT)).encode())
                    digest.update(path.read_bytes())
        dirty = [line[3:] for line in git("status", "--porcelain", "--", "event_tasks", "config", "schemas").splitlines()]
        return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty, "digest": digest.hexdigest()[:12]}

    def run(self) -> None:
        t0 = time.monotonic()
        load_before = os.getloadavg()
        self.code_before = self.code_state()
        print(f"$ {self.command}", flush=True)
        try:
            self.setup()
            self.describe_sections()
            for section in self.sections:
                started = time.monotonic()
                print(f"== {section}", flush=True)
                getattr(self, f"bench_{section}")()
                print(f"== {section} done in {time.monotonic() - started:.0f} s", flush=True)
            self.not_measurable()
            wall = time.monotonic() - t0
            meta = self.meta(load_before)
            self.results.jsonl(self.out_dir / "results.jsonl", meta)
            (self.out_dir / "RESULTS.md").write_text(self.results.markdown(meta, wall))
            print(f"wrote {self.out_dir / 'RESULTS.md'} and {self.out_dir / 'results.jsonl'}; wall time {wall:.0f} s")
        finally:
            self.teardown()

    def meta(self, load_before: tuple[float, float, float]) -> dict[str, Any]:
        versions = {"Python": platform.python_version()}
        for dist in ("celery", "kombu", "redis", "Django", "django-celery-results", "marshmallow", "psycopg",
                     "openedx-events", "edx-event-bus-redis", "walrus", "fastavro"):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = "not installed"
        versions["Redis server"] = self.redis.version() if self.redis else "?"
        if self.vhost is not None:
            versions["RabbitMQ"] = self.vhost.version()
        if self.pg is not None:
            versions["PostgreSQL"] = self.pg.version()
        cpu = "?"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        after = self.code_state()
        before = self.code_before
        code = (f"commit {before['commit']}"
                + (f" with uncommitted changes in {', '.join(before['uncommitted'])}" if before["uncommitted"] else "")
                + f" (digest of event_tasks/, config/, schemas/, bench/: {before['digest']})")
        if after["digest"] != before["digest"] or after["uncommitted"] != before["uncommitted"]:
            code += (f"; **the code changed during the run** (now commit {after['commit']}, digest {after['digest']}): "
                     "workers started late in the run may have run the newer code")
        elif after["commit"] != before["commit"]:
            code += (f"; HEAD moved to {after['commit']} during the run, but none of the measured files changed "
                     "(same digest)")
        machine = {"code measured": code, "CPU": f"{os.cpu_count()} cores, {cpu}", "kernel": platform.release(),
                   "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in load_before),
                   "load average at end": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
                   "other work": "the machine is shared: other processes (e.g. another test suite) may have "
                                 "run at the same time; the load averages above say how busy it was"}
        return {"machine": machine, "versions": versions}

    def describe_sections(self) -> None:
        r = self.results
        rounds = f"{self.rounds} runs per figure"
        r.section("Publish on Redis", f"Events/s of one producer process (in-process, one thread) on a private "
                  f"redis-server, every system publishing the same certificate event; {rounds}. *Subscribed "
                  f"services*: that many queues bound to the type; *bindings*: the subscription table holds that many "
                  f"bindings, 3 of which match. Events per run: {self.sizes_text()}.")
        r.section("Batch publish on Redis", f"`event_tasks.send_events(items)` in calls of {BATCH_SIZE} events, 3 "
                  f"subscribed services; {rounds}. The comparators have no batch API: their figures are their "
                  f"per-event sends of the 3-services row, measured in the same rounds.")
        r.section("Consume on Redis", f"One worker (`-P solo`), a queue pre-filled with {self.n(CONSUME_EVENTS)} "
                  f"events; time from the first message taken until the queue and its unacked messages are empty; "
                  f"{rounds}, each with a fresh worker (and fresh database).")
        r.section("Latency and memory on Redis", f"{self.n(LATENCY_EVENTS)} events sent at {LATENCY_RATE:.0f}/s "
                  f"(paced, one producer) to one idle `-P solo` worker; latency = the handler's clock minus the "
                  f"event's send time; {rounds}, each with a fresh worker. Idle RSS: VmRSS from /proc of the worker "
                  f"process, read after {WARMUP_EVENTS} warm-up events and 1 s idle.")
        r.section("Outbox relay vs direct sends", f"Events/s of one producer process with its own database "
                  f"(one event per transaction), {self.n(OUTBOX_EVENTS)} events per mode and run, 3 subscribed "
                  f"services on Redis; {rounds}.")
        r.section("RabbitMQ", f"A private vhost on the local RabbitMQ; 3 queues bound to the type (durable, "
                  f"persistent messages); publish: {self.n(RABBIT_PUBLISH_EVENTS)} events per run from one process; "
                  f"consume: one `-P solo` worker, {self.n(RABBIT_CONSUME_EVENTS)} pre-filled events; {rounds}.")
        r.section("What could not be measured here", "Rows this machine or these systems cannot give, and why.")

    def sizes_text(self) -> str:
        subs = ", ".join(f"{k} services: {self.n(v)}" for k, v in PUBLISH_EVENTS.items())
        binds = ", ".join(f"{k} bindings: {self.n(v)}" for k, v in BINDINGS_EVENTS.items())
        return f"{subs}; {binds}"

    # -- helpers ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Empty the private Redis (only ours: the machine's shared Redis is never touched)."""
        self.client.flushall()

    def declare(self, services: list[str], url: str | None = None) -> None:
        from kombu import Connection

        from event_tasks.brokers.topology import declare, service_queue

        from .payload import CERTIFICATE_CREATED

        with Connection(url or self.url) as conn:
            declare(conn, [service_queue(s, [CERTIFICATE_CREATED]) for s in services])

    def proc(self, command: list[str], env: dict[str, str], name: str):
        from .workers import Proc

        p = Proc(command, env, self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.log")
        self.procs.append(p)
        return p.start()

    def stop(self, p: Any) -> None:
        p.stop()
        if p in self.procs:
            self.procs.remove(p)

    def template_db(self) -> Path:
        """A migrated SQLite database, copied for every worker run (a fresh database each time)."""
        path = self.tmp / "template.sqlite3"
        if not path.exists():
            from .workers import fabric_env, manage

            manage(fabric_env(None, self.url, f"sqlite:///{path}"), "migrate", "-v", "0")
        return path

    def fresh_sqlite(self, name: str) -> str:
        path = self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.sqlite3"
        shutil.copy(self.template_db(), path)
        return f"sqlite:///{path}"

    def postgres(self) -> str:
        if self.pg is None:
            from .brokers import PrivatePostgres
            from .workers import fabric_env, manage

            self.pg = PrivatePostgres("et_bench").start()
            manage(fabric_env(None, self.url, self.pg.url), "migrate", "-v", "0")
        return self.pg.url

    def reset_postgres(self) -> str:
        url = self.postgres()
        self.pg.psql("TRUNCATE event_tasks_processedevent, event_tasks_deadletter, event_tasks_redelivery, "
                     "event_tasks_outboxevent, django_celery_results_taskresult RESTART IDENTITY")
        return url

    def db_count(self, db_url: str, sql: str) -> int:
        if db_url.startswith("sqlite:///"):
            con = sqlite3.connect(db_url[len("sqlite:///"):], timeout=30)
            try:
                return int(con.execute(sql).fetchone()[0])
            finally:
                con.close()
        import psycopg

        with psycopg.connect(db_url.replace("postgres://", "postgresql://"), autocommit=True) as con:
            return int(con.execute(sql).fetchone()[0])

    def db_rows(self, db_url: str, sql: str) -> list[tuple]:
        if db_url.startswith("sqlite:///"):
            con = sqlite3.connect(db_url[len("sqlite:///"):], timeout=30)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        import psycopg

        with psycopg.connect(db_url.replace("postgres://", "postgresql://"), autocommit=True) as con:
            return con.execute(sql).fetchall()

    def host_settings(self) -> str:
        """What the workers' Django settings (config.settings.test) set for Celery, read, not assumed."""
        from django.conf import settings

        backend = getattr(settings, "CELERY_RESULT_BACKEND", None)
        events = getattr(settings, "CELERY_WORKER_SEND_TASK_EVENTS", False)
        reuse = getattr(settings, "CELERY_DB_REUSE_MAX", None)
        return (f"result backend {backend!r}{' (extended)' if getattr(settings, 'CELERY_RESULT_EXTENDED', False) else ''}, "
                f"task events {'on' if events else 'off'}, "
                + (f"`CELERY_DB_REUSE_MAX={reuse}` (database connections kept across tasks)" if reuse else
                   "no `CELERY_DB_REUSE_MAX` (Celery's Django fix-up closes the database connection around every task)"))

    def payloads(self) -> list[dict[str, Any]]:
        from .payload import certificate

        return [certificate(i) for i in range(16)]

    # =============================================================================================
    # Publish (Redis)
    # =============================================================================================
    def publishers(self) -> dict[str, Callable[[int], None]]:
        """One ``send(i)`` per system, built once (connections, scripts, producers outside the timing)."""
        from celery import Celery
        from kombu import Connection, Exchange, Producer

        import event_tasks

        from . import openedx_bus
        from .payload import CERTIFICATE_CREATED, COURSE_KEY, envelope

        data = self.payloads()
        exchange = Exchange("events", type="topic", durable=True)
        send_event = event_tasks.send_event

        def ours(i: int) -> None:
            send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

        plain = Celery("plain-producer", broker=self.url, set_as_current=False)
        plain.conf.task_serializer = "json"
        self._plain_producer_ctx = plain.producer_or_acquire()
        producer = self._plain_producer_ctx.__enter__()

        def celery(i: int) -> None:
            plain.send_task(CERTIFICATE_CREATED, args=[envelope(i), data[i % 16]], exchange=exchange,
                            routing_key=CERTIFICATE_CREATED, declare=[exchange], producer=producer)

        conn = Connection(self.url)
        kombu_producer = Producer(conn.channel())
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

        def kombu(i: int) -> None:
            env = envelope(i)
            kombu_producer.publish(
                [[env, data[i % 16]], {}, embed], exchange=exchange, routing_key=CERTIFICATE_CREATED,
                declare=[exchange], serializer="json", delivery_mode=2,
                headers={"lang": "py", "task": CERTIFICATE_CREATED, "id": env["id"], "root_id": env["id"],
                         "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
                         "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "{}", "origin": "bench"})

        openedx = openedx_bus.sender(openedx_bus.make_producer(self.url))
        return {"ours": ours, "celery": celery, "kombu": kombu, "openedx": openedx}

    def setup_table(self, subscribed: int, bindings: int) -> list[str]:
        """Flush, then bind ``subscribed`` queues to the type and enough other bindings to make ``bindings``."""
        from kombu import Connection, Exchange, Queue, binding

        self.flush()
        services = [f"s{k:02d}" for k in range(subscribed)]
        self.declare(services)
        others = max(0, bindings - subscribed)
        if others:
            exchange = Exchange("events", type="topic", durable=True)
            per_queue = 5
            with Connection(self.url) as conn, conn.channel() as ch:
                for q in range((others + per_queue - 1) // per_queue):
                    keys = []
                    for k in range(q * per_queue, min(others, (q + 1) * per_queue)):
                        # other services' subscriptions: mostly exact types, some patterns
                        keys.append(f"org.openedx.domain{k}.#" if k % 3 == 0
                                    else f"org.openedx.learning.thing{k}.changed.v1")
                    Queue(f"events.other{q:03d}", bindings=[binding(exchange, routing_key=key) for key in keys],
                          durable=True)(ch).declare()
        table = self.client.scard("_kombu.binding.events")
        assert table == max(bindings, subscribed), (table, bindings)
        return [f"events.{s}" for s in services]

    def commands(self) -> int:
        stats = self.client.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_llen", "cmdstat_xlen",
                                                                       "cmdstat_del", "cmdstat_ping"))

    def clear_published(self, queues: list[str]) -> None:
        from .openedx_bus import TOPIC

        self.client.delete(*queues, TOPIC)

    def check_published(self, system: str, queues: list[str], n: int) -> None:
        from .openedx_bus import TOPIC

        if system == "openedx":
            got = self.client.xlen(TOPIC)
            assert got == n, f"Open edX stream holds {got} entries, expected {n}"
            return
        depths = [self.client.llen(q) for q in queues]
        assert all(d == n for d in depths), f"{system}: queue depths {depths}, expected {n} each"

    def bench_publish(self) -> None:
        import event_tasks
        import event_tasks.send.publisher

        send_events = getattr(event_tasks, "send_events", None) or getattr(event_tasks.send.publisher, "send_events", None)
        sec = "Publish on Redis"
        batch_sec = "Batch publish on Redis"
        send = self.publishers()
        scenarios = [(f"{s} subscribed service{'s' if s > 1 else ''}", s, s, self.n(PUBLISH_EVENTS[s]))
                     for s in PUBLISH_EVENTS]
        scenarios += [(f"{b:,} bindings in the table (3 match)", 3, b, self.n(BINDINGS_EVENTS[b]))
                      for b in BINDINGS_EVENTS]
        from .payload import CERTIFICATE_CREATED, COURSE_KEY

        data = self.payloads()
        for label, subscribed, bindings, n in scenarios:
            queues = self.setup_table(subscribed, bindings)
            for fn in send.values():                   # warm every path on this table
                fn(0)
            self.clear_published(queues)
            with_batch = send_events is not None and label.startswith("3 subscribed")
            for rnd in range(self.rounds):
                order = list(send)
                order = order[rnd % len(order):] + order[:rnd % len(order)]
                if with_batch:
                    order.append("ours-batch")
                for system in order:
                    before = self.commands()
                    start = time.perf_counter()
                    if system == "ours-batch":
                        for offset in range(0, n, BATCH_SIZE):
                            send_events([(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY)
                                         for i in range(offset, min(n, offset + BATCH_SIZE))])
                    else:
                        fn = send[system]
                        for i in range(n):
                            fn(i)
                    rate = n / (time.perf_counter() - start)
                    per_event = (self.commands() - before) / n
                    self.check_published("ours" if system == "ours-batch" else system, queues, n)
                    self.clear_published(queues)
                    if system == "ours-batch":
                        self.results.add(batch_sec, f"batches of {BATCH_SIZE}, 3 subscribed services", "ours", rate,
                                         "events/s", events=n, redis_commands_per_event=per_event)
                    else:
                        self.results.add(sec, label, system, rate, "events/s", events=n,
                                         redis_commands_per_event=per_event)
            if with_batch:
                row = self.results.row(sec, label, "events/s")
                for system in ("celery", "kombu", "openedx"):
                    f = row.figures[system]
                    for v in f.runs:
                        self.results.add(batch_sec, f"batches of {BATCH_SIZE}, 3 subscribed services", system, v,
                                         "events/s", note="no batch API: one send per event (the 3-services "
                                                          "row's figures of the same rounds)")
        if send_events is None:
            for system, why in (("ours", "`event_tasks.send_events` does not exist in this checkout (being added)"),):
                self.results.unavailable(batch_sec, f"batches of {BATCH_SIZE}, 3 subscribed services", system, why,
                                         "events/s")
        self._plain_producer_ctx.__exit__(None, None, None)
        self.results.note(sec, "event-tasks validates every payload against the catalog schema (its compiled codec: "
                               "marshmallow's fields without the schema machinery, decision 0012) and pushes one copy "
                               "per subscribed queue with one Lua script (EVALSHA); plain "
                               "Celery and kombu route through kombu's topic exchange on Redis (SMEMBERS of the binding "
                               "table, then one LPUSH round trip per matching queue) and validate nothing; the Open edX "
                               "bus serializes with Avro and does one XADD per event whatever the number of consumers "
                               "(each consuming service is a consumer group on one stream).")
        self.results.note(sec, "The Open edX producer swallows publish errors (it logs them and returns): its figure "
                               "is for sends that were not confirmed to the caller; the counts were checked after "
                               "every run for every system.")

    # =============================================================================================
    # Consume (Redis)
    # =============================================================================================
    def fabric_worker(self, service: str, broker_url: str, db_url: str, **env: str):
        from .workers import fabric_env, worker_command

        return self.proc(worker_command("config.celery_app", f"events.{service}", service),
                         fabric_env(service, broker_url, db_url, **env), f"worker-{service}")

    def plain_worker(self, broker_url: str, **env: str):
        from .workers import fabric_env, worker_command

        e = fabric_env(None, broker_url, "sqlite:///unused", BENCH_PLAIN_QUEUE="events.plain", **env)
        for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "EVENT_TASKS_CONSUMERS_PACKAGE",
                  "EVENT_TASKS_SCHEMAS_PACKAGE"):
            e.pop(k, None)
        return self.proc(worker_command("bench.plain_celery", "events.plain", "plain"), e, "worker-plain")

    def openedx_consumer(self, group: str, mode: str, **env: str):
        from .workers import PY, fabric_env

        e = fabric_env(None, self.url, "sqlite:///unused", **env)
        for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL"):
            e.pop(k, None)
        return self.proc([PY, "-m", "bench.openedx_bus", "consume", "--url", self.url, "--group", group,
                          "--mode", mode], e, f"openedx-{group}")

    def plain_queue(self, url: str) -> None:
        from kombu import Connection, Exchange, Queue

        from .payload import CERTIFICATE_CREATED

        with Connection(url) as conn, conn.channel() as ch:
            Queue("events.plain", Exchange("events", type="topic", durable=True), routing_key=CERTIFICATE_CREATED,
                  durable=True)(ch).declare()

    def plain_sender(self, url: str, confirm: bool = False):
        from celery import Celery
        from kombu import Exchange

        from .payload import CERTIFICATE_CREATED, envelope

        data = self.payloads()
        app = Celery(f"plain-{uuid.uuid4().hex[:4]}", broker=url, set_as_current=False)
        app.conf.task_serializer = "json"
        if confirm:
            app.conf.broker_transport_options = {"confirm_publish": True}
        exchange = Exchange("events", type="topic", durable=True)
        ctx = app.producer_or_acquire()
        producer = ctx.__enter__()

        def send(i: int) -> None:
            app.send_task(CERTIFICATE_CREATED, args=[envelope(i), data[i % 16]], exchange=exchange,
                          routing_key=CERTIFICATE_CREATED, declare=[exchange], producer=producer)

        send.close = lambda: ctx.__exit__(None, None, None)  # type: ignore[attr-defined]
        return send

    def fill_ours(self, service: str, n: int) -> bytes:
        """Pre-fill ``events.<service>`` with n events through send_event; returns the list's DUMP."""
        import event_tasks

        from .payload import CERTIFICATE_CREATED, COURSE_KEY

        self.flush()
        self.declare([service])
        data = self.payloads()
        for i in range(n):
            event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
        assert self.client.llen(f"events.{service}") == n
        return self.client.dump(f"events.{service}")

    def restore(self, key: str, blob: bytes) -> None:
        self.flush()
        self.client.restore(key, 0, blob, replace=True)

    def bench_consume(self) -> None:
        import event_tasks

        from .openedx_bus import TOPIC, make_producer, sender
        from .workers import drain_redis_lists, drain_stream, fabric_env, worker_command

        sec = "Consume on Redis"
        n = self.n(CONSUME_EVENTS, 100)
        batch_supported = "batch" in inspect.signature(event_tasks.consumer).parameters
        noop_row = "no-op handler, duplicate suppression off"
        rows = {"noop": noop_row, "dedupe": "no-op handler, duplicate suppression on, SQLite",
                "dedupe-pg": "no-op handler, duplicate suppression on, PostgreSQL",
                "batched": f"batched handler (`@consumer(..., batch={BATCH_SIZE})`), no-op",
                "batchdedupe-pg": f"batched handler (batch={BATCH_SIZE}), duplicate suppression on, PostgreSQL"}
        # pre-filled queues, restored (DUMP/RESTORE) before every run: every run drains the same messages
        blobs = {"noop": self.fill_ours("noop", n), "dedupe": self.fill_ours("dedupe", n)}
        if batch_supported:
            blobs["batched"] = self.fill_ours("batched", n)
            blobs["batchdedupe"] = self.fill_ours("batchdedupe", n)
        self.flush()
        self.plain_queue(self.url)
        plain_send = self.plain_sender(self.url)
        for i in range(n):
            plain_send(i)
        plain_send.close()
        blobs["plain"] = self.client.dump("events.plain")
        self.flush()
        oe_send = sender(make_producer(self.url))
        for i in range(n):
            oe_send(i)
        assert self.client.xlen(TOPIC) == n
        blobs["openedx"] = self.client.dump(TOPIC)
        self.postgres()
        systems = ["noop", "plain", "plain-django", "openedx", "dedupe", "dedupe-pg"] + \
            (["batched", "batchdedupe-pg"] if batch_supported else [])
        for rnd in range(self.rounds):
            for system in systems:
                done = self.tmp / f"done-{uuid.uuid4().hex[:6]}"
                env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
                if system == "plain":
                    self.restore("events.plain", blobs["plain"])
                    w = self.plain_worker(self.url, **env)
                    secs = drain_redis_lists(self.client, n, w, queue="events.plain", unacked=("unacked",))
                elif system == "plain-django":
                    self.restore("events.plain", blobs["plain"])
                    db = self.fresh_sqlite("plaintask")
                    w = self.proc(worker_command("config.celery_app", "events.plain", "plaintask"),
                                  fabric_env("plaintask", self.url, db, **env), "worker-plaintask")
                    secs = drain_redis_lists(self.client, n, w, queue="events.plain", unacked=("unacked",))
                elif system == "openedx":
                    self.restore(TOPIC, blobs["openedx"])
                    group = f"svc{rnd}"
                    w = self.openedx_consumer(group, "noop", **env)
                    secs = drain_stream(self.client, TOPIC, group, w)
                else:
                    service = system.replace("-pg", "")
                    queue = f"events.{service}"
                    self.restore(queue, blobs[service])
                    db = self.reset_postgres() if system.endswith("-pg") else self.fresh_sqlite(service)
                    w = self.fabric_worker(service, self.url, db, **env)
                    secs = drain_redis_lists(self.client, n, w, queue=queue,
                                             extra_lists=(queue + "\x06\x16inflight",), unacked=(f"unacked:{queue}",))
                self.stop(w)
                if not done.exists():
                    raise RuntimeError(f"{system}: the handler did not run {n} times; log:\n{w.output()[-3000:]}")
                if system in ("noop", "dedupe", "dedupe-pg", "batched", "batchdedupe-pg"):
                    dead = self.db_count(db, "SELECT count(*) FROM event_tasks_deadletter")
                    assert dead == 0, f"{system}: {dead} dead letters"
                    if system.startswith(("dedupe", "batchdedupe")):
                        marks = self.db_count(db, "SELECT count(*) FROM event_tasks_processedevent")
                        assert marks == n, f"{system}: {marks} duplicate marks, expected {n}"
                rate = n / secs
                if system == "plain":
                    for row in rows.values():
                        if row in (rows["batched"], rows["batchdedupe-pg"]) and not batch_supported:
                            continue
                        self.results.add(sec, row, "celery", rate, "events/s", events=n)
                elif system == "openedx":
                    for row in rows.values():
                        if row in (rows["batched"], rows["batchdedupe-pg"]) and not batch_supported:
                            continue
                        self.results.add(sec, row, "openedx", rate, "events/s", events=n)
                elif system == "plain-django":
                    self.results.add(sec, noop_row, "celery-django", rate, "events/s", events=n,
                                     note="a no-op task in this Django project (`celery -A config.celery_app`, "
                                          "service `plaintask`, no event queue): the project's Celery settings "
                                          "without the fabric")
                else:
                    self.results.add(sec, rows[system], "ours", rate, "events/s", events=n)
        for row in rows.values():
            if row == noop_row or (row in (rows["batched"], rows["batchdedupe-pg"]) and not batch_supported):
                continue
            r = self.results.row(sec, row, "events/s")
            for system, what in (("celery", "a no-op task: plain Celery has no duplicate suppression (its no-op "
                                            "figure, same rounds)"),
                                 ("openedx", "a no-op receiver: the Open edX bus has no duplicate suppression "
                                             "(its no-op figure, same rounds)")):
                if system in r.figures:
                    r.figures[system].note = what
        if not batch_supported:
            self.results.unavailable(sec, rows["batched"], "ours", "`@consumer` has no `batch=` option in this "
                                     f"checkout (signature: {inspect.signature(event_tasks.consumer)})", "events/s")
        self.results.note(sec, "Each system as it ships: event-tasks runs `celery -A config.celery_app` with "
                               f"`config.settings.test` ({self.host_settings()}); plain Celery is "
                               "`bench/plain_celery.py` (no Django, no result backend, late acks, prefetch ×4, the "
                               "same worker flags); the Open edX consumer loop (`RedisEventConsumer."
                               "consume_indefinitely`: XREADGROUP of one entry + XACK per event).")
        import bench.services.batched.handlers as batched

        if batch_supported:
            r = self.results.row(sec, rows["batched"], "events/s")
            if "ours" in r.figures:
                r.figures["ours"].note = ("`@consumer(TYPE, batch=100, deduplicate=False)`" if not batched.DEDUPLICATE
                                          else "`@consumer(TYPE, batch=100)` (duplicate suppression on: the library "
                                               "refused `deduplicate=False` with `batch`)") + ", SQLite"

    # =============================================================================================
    # Latency and idle memory (Redis)
    # =============================================================================================
    def bench_latency(self) -> None:
        from .openedx_bus import make_producer, sender
        from .payload import CERTIFICATE_CREATED
        from .workers import wait_until

        import event_tasks

        from .payload import COURSE_KEY

        sec = "Latency and memory on Redis"
        n = self.n(LATENCY_EVENTS, 100)
        data = self.payloads()
        oe_send = None
        for rnd in range(self.rounds):
            for system in ("ours", "celery", "openedx"):
                lat = self.tmp / f"latency-{system}-{uuid.uuid4().hex[:6]}.txt"
                lat.write_text("")
                self.flush()
                if system == "ours":
                    self.declare(["latency"])
                    w = self.fabric_worker("latency", self.url, self.fresh_sqlite("latency"),
                                           BENCH_LATENCY_FILE=str(lat))

                    def send(i: int) -> None:
                        event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
                elif system == "celery":
                    self.plain_queue(self.url)
                    w = self.plain_worker(self.url, BENCH_MODE="latency", BENCH_LATENCY_FILE=str(lat))
                    send = self.plain_sender(self.url)
                else:
                    w = self.openedx_consumer(f"lat{rnd}", "latency", BENCH_LATENCY_FILE=str(lat))
                    if oe_send is None:
                        oe_send = sender(make_producer(self.url))
                    send = oe_send
                    wait_until(lambda: b"ready" in w.log.read_bytes() if w.log.exists() else False, 60,
                               "the Open edX consumer", proc=w)
                    time.sleep(0.5)   # its consumer group is created after "ready" is printed

                def lines() -> int:
                    with open(lat) as fh:
                        return sum(1 for _ in fh)

                for i in range(WARMUP_EVENTS):   # readiness + warm-up (the worker may still be starting)
                    send(i)
                    time.sleep(0.01)
                wait_until(lambda: lines() >= WARMUP_EVENTS, 120, f"{system} to handle the warm-up events",
                           interval=0.05, proc=w)
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
                wait_until(lambda: lines() >= WARMUP_EVENTS + n, 300, f"{system} to handle {n} events",
                           interval=0.05, proc=w)
                self.stop(w)
                if hasattr(send, "close"):
                    send.close()
                values = [float(x) * 1000 for x in lat.read_text().split()[WARMUP_EVENTS:]]
                p50, p99 = pct(values, 0.5), pct(values, 0.99)
                self.results.add(sec, f"send→handler latency p50 at {LATENCY_RATE:.0f} events/s", system, p50, "ms",
                                 higher_is_better=False, events=n, achieved_send_rate=sent_rate)
                self.results.add(sec, f"send→handler latency p99 at {LATENCY_RATE:.0f} events/s", system, p99, "ms",
                                 higher_is_better=False, events=n, max_ms=max(values))
                self.results.add(sec, "idle worker RSS", system, rss, "MiB", higher_is_better=False,
                                 note="the consumer process (`python -m bench.openedx_bus consume`), not a Celery "
                                      "worker" if system == "openedx" else "")
        consume = self.results.rows.get(("Consume on Redis", "no-op handler, duplicate suppression off"))
        if consume is not None and "ours" in consume.figures and consume.figures["ours"].median:
            self.results.note(sec, f"For scale: event-tasks' worker drained a pre-filled queue at "
                                   f"{consume.figures['ours'].median:,.0f} events/s in this run (Consume on Redis, "
                                   f"no-op row), so {LATENCY_RATE:.0f} events/s keeps it "
                                   f"{100 * LATENCY_RATE / consume.figures['ours'].median:.0f}% busy; plain Celery "
                                   f"drained {consume.figures['celery'].median:,.0f} events/s.")
        self.results.note(sec, "Latency is measured across processes with the wall clock (same machine); the "
                               "send time is the event's own time stamp (event-tasks: the envelope `time`; plain "
                               "Celery: the same envelope built just before `send_task`; Open edX: the metadata "
                               "`time`), so it includes the producer's publish step.")
        self.results.note(sec, "event-tasks' latency worker runs with duplicate suppression off (like plain "
                               f"Celery, which has none), with the project's settings: {self.host_settings()}.")

    # =============================================================================================
    # Outbox (Redis; SQLite and PostgreSQL producers)
    # =============================================================================================
    def bench_outbox(self) -> None:
        from .workers import PY, fabric_env, wait_until

        sec = "Outbox relay vs direct sends"
        n = self.n(OUTBOX_EVENTS)
        services = ["s00", "s01", "s02"]
        for rnd in range(self.rounds):
            for db_kind in ("SQLite", "PostgreSQL"):
                self.flush()
                self.declare(services)
                db = self.reset_postgres() if db_kind == "PostgreSQL" else self.fresh_sqlite("producer")
                env = fabric_env("lms", self.url, db)
                pending_n = self.n(OUTBOX_PENDING)
                out = subprocess.run([PY, "-m", "bench.outbox_producer", "--events", str(n), "--pending",
                                      str(pending_n), "--batch", str(BATCH_SIZE)], cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    raise RuntimeError(f"outbox producer failed:\n{out.stderr[-3000:]}")
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                pending = self.db_count(db, "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL")
                assert pending == pending_n, f"{pending} pending outbox rows, expected {pending_n}"
                relay = self.proc([PY, "manage.py", "events", "relay", "--grace", "0"], env, "relay")
                started = time.perf_counter()
                wait_until(lambda: self.db_count(db, "SELECT count(*) FROM event_tasks_outboxevent "
                                                     "WHERE sent_at IS NULL") == 0,
                           300, "the relay to publish the outbox", interval=0.02, proc=relay)
                relay_wall = time.perf_counter() - started
                self.stop(relay)
                rows = self.db_rows(db, "SELECT sent_at FROM event_tasks_outboxevent WHERE attempts > 1 "
                                        "ORDER BY sent_at")
                times = [r[0] if isinstance(r[0], dt.datetime) else dt.datetime.fromisoformat(str(r[0]))
                         for r in rows]
                assert len(times) == pending_n, (len(times), pending_n)
                # the relay marks each batch sent with one time stamp: rate over the batches after the first
                first = times[0]
                after_first = sum(1 for t in times if t > first)
                span = (times[-1] - first).total_seconds()
                relay_rate = after_first / span if span > 0 else pending_n / relay_wall
                depths = [self.client.llen(f"events.{s}") for s in services]
                expected = 3 * (n + 1) + pending_n + ((n + 1) if "atomic_batch" in figures else 0)
                assert all(d == expected for d in depths), f"queue depths {depths}, expected {expected}"
                self.results.add(sec, f"direct `send_event` (no transaction), {db_kind}", "ours",
                                 figures["direct"], "events/s", events=n)
                atomic_row = f"`transaction.atomic()` + `send_event`, one event per transaction, {db_kind}"
                self.results.add(sec, atomic_row, "ours", figures["atomic"], "events/s", events=n,
                                 note="outbox row written in the transaction, published right after commit, "
                                      "then marked sent")
                self.results.add(sec, atomic_row, "celery", figures["plain_on_commit"], "events/s", events=n,
                                 note="`transaction.on_commit(lambda: send_task(...))`, the usual idiom: no "
                                      "outbox, the event is lost if the broker is down at commit")
                if "atomic_batch" in figures:
                    self.results.add(sec, f"`transaction.atomic()` + `send_events`, {BATCH_SIZE} events per "
                                          f"transaction, {db_kind}", "ours", figures["atomic_batch"], "events/s",
                                     events=n)
                self.results.add(sec, f"`python manage.py events relay`, {pending_n} pending rows, {db_kind}",
                                 "ours", relay_rate, "events/s", events=pending_n,
                                 relay_wall_s_including_start=relay_wall,
                                 )
        for r in self.results.rows.values():
            if r.section == sec and "events relay" in r.name and "ours" in r.figures:
                walls = r.figures["ours"].params.get("relay_wall_s_including_start", [])
                r.figures["ours"].note = ("rate over the batches after the first (the relay marks each batch sent "
                                          "with one time stamp); the whole command, Django set-up included, took "
                                          + ", ".join(f"{w:.1f}" for w in walls) + " s in the runs")
        for row_kind in ("`transaction.atomic()`", "`python manage.py events relay`", "direct"):
            for db_kind in ("SQLite", "PostgreSQL"):
                for r in self.results.rows.values():
                    if r.section == sec and r.name.startswith(row_kind) and r.name.endswith(db_kind):
                        for system, why in (("kombu", "no outbox in kombu"),
                                            ("openedx", "the Open edX event bus has no outbox (events are produced "
                                                        "when the signal is sent)")):
                            if system not in r.figures:
                                self.results.unavailable(sec, r.name, system, why, "events/s")
                        if "celery" not in r.figures:
                            why = ("plain Celery has no outbox or relay" if "relay" in r.name else
                                   "plain Celery has no batch send" if "send_events" in r.name else
                                   "see 'Publish on Redis', 3 subscribed services")
                            self.results.unavailable(sec, r.name, "celery", why, "events/s")

    # =============================================================================================
    # RabbitMQ
    # =============================================================================================
    def bench_rabbitmq(self) -> None:
        from celery import Celery
        from kombu import Connection, Exchange, Producer

        import event_tasks
        from event_tasks.app import install
        from event_tasks.send.publisher import reset_default_publisher

        from .brokers import RabbitVhost
        from .payload import CERTIFICATE_CREATED, COURSE_KEY, envelope
        from .workers import wait_until

        sec = "RabbitMQ"
        try:
            self.vhost = RabbitVhost().start()
        except Exception as exc:  # noqa: BLE001
            for row in ("publish, 3 subscribed services", "consume, one `-P solo` worker"):
                for system in ("ours", "celery", "kombu"):
                    self.results.unavailable(sec, row, system, f"no RabbitMQ: {exc}", "events/s", "not measured")
            return
        url = self.vhost.url
        install(Celery("bench-producer-amqp", broker=url, set_as_current=False))
        reset_default_publisher()
        data = self.payloads()
        services = ["s00", "s01", "s02"]
        self.declare(services, url)
        queues = [f"events.{s}" for s in services]
        exchange = Exchange("events", type="topic", durable=True)

        def ours(i: int) -> None:
            event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

        celery = self.plain_sender(url, confirm=True)
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        conns = {c: Connection(url, transport_options={"confirm_publish": c}) for c in (True, False)}
        producers = {c: Producer(conn.channel()) for c, conn in conns.items()}

        def kombu_send(confirm: bool) -> Callable[[int], None]:
            producer = producers[confirm]

            def send(i: int) -> None:
                env = envelope(i)
                producer.publish(
                    [[env, data[i % 16]], {}, embed], exchange=exchange, routing_key=CERTIFICATE_CREATED,
                    declare=[exchange], serializer="json", delivery_mode=2,
                    headers={"lang": "py", "task": CERTIFICATE_CREATED, "id": env["id"], "root_id": env["id"],
                             "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
                             "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "{}", "origin": "bench"})
            return send

        def ours_batch(n: int) -> None:
            for first in range(0, n, BATCH_SIZE):
                event_tasks.send_events([(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY)
                                         for i in range(first, min(n, first + BATCH_SIZE))])

        systems = {"ours": ours, "ours (send_events)": None, "celery": celery, "kombu": kombu_send(True),
                   "kombu (no confirms)": kombu_send(False)}
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
        n = self.n(RABBIT_PUBLISH_EVENTS)
        row = "publish, 3 subscribed services (publisher confirms)"
        for rnd in range(self.rounds):
            order = list(systems)
            order = order[rnd % len(order):] + order[:rnd % len(order)]
            for system in order:
                start = time.perf_counter()
                if systems[system] is None:
                    ours_batch(n)
                else:
                    for i in range(n):
                        systems[system](i)
                rate = n / (time.perf_counter() - start)
                got = wait_until(lambda: (lambda d: d if all(x == n for x in d) else None)(depths(queues)), 10,
                                 f"{system}: {n} messages in each queue")
                assert got
                purge(queues)
                if system == "ours (send_events)":
                    self.results.add(sec, batch_row, "ours", rate, "events/s", events=n,
                                     note="publish the batch, then wait once for every confirm")
                    continue
                if system in ("celery", "kombu"):   # no batch API: their per-event sends of the same rounds
                    self.results.add(sec, batch_row, system, rate, "events/s", events=n,
                                     note="no batch API: one confirmed send per event (same rounds)")
                if system == "kombu (no confirms)":
                    self.results.add(sec, "publish, 3 subscribed services, no publisher confirms", "kombu", rate,
                                     "events/s", events=n)
                else:
                    self.results.add(sec, row, system, rate, "events/s", events=n,
                                     note={"ours": "`send_event`: KombuFanout, one publish to the topic exchange, "
                                                   "confirm awaited per event",
                                           "celery": "`send_task` with `broker_transport_options="
                                                     "{'confirm_publish': True}`",
                                           "kombu": "`Producer.publish` on a connection with `confirm_publish`"
                                           }.get(system, ""))
        celery.close()
        for c in conns.values():
            c.release()
        self.results.unavailable(sec, "publish, 3 subscribed services, no publisher confirms", "ours",
                                 "event-tasks always publishes with confirms on RabbitMQ", "events/s")
        # -- consume --
        n = self.n(RABBIT_CONSUME_EVENTS, 100)
        with Connection(url) as conn, conn.channel() as ch:
            for q in queues:
                ch.queue_delete(q)
        consume_row = "consume, one `-P solo` worker, no-op handler, duplicate suppression off"
        plain_fill = self.plain_sender(url)
        for rnd in range(self.rounds):
            for system in ("ours", "celery"):
                # only the queue being measured is bound while it is filled (both are bound to the type)
                queue = "events.noop" if system == "ours" else "events.plain"
                if system == "ours":
                    self.declare(["noop"], url)
                else:
                    self.plain_queue(url)
                for i in range(n):
                    (ours if system == "ours" else plain_fill)(i)
                wait_until(lambda: depths([queue])[0] == n, 30, f"{n} messages in {queue}")
                done = self.tmp / f"done-{uuid.uuid4().hex[:6]}"
                env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
                if system == "ours":
                    w = self.fabric_worker("noop", url, self.fresh_sqlite("noop-amqp"), **env)
                else:
                    w = self.plain_worker(url, **env)
                start = wait_until(lambda: time.time() if depths([queue])[0] < n else None, 120,
                                   f"the first message of {queue}", interval=0.002, proc=w)
                wait_until(lambda: done.exists() and done.read_text(), 600, f"{system} to handle {n} events",
                           interval=0.01, proc=w)
                end = float(done.read_text())
                wait_until(lambda: depths([queue])[0] == 0, 30, f"{queue} to be empty", proc=w)
                self.stop(w)
                with Connection(url) as conn, conn.channel() as ch:
                    ch.queue_delete(queue)
                self.results.add(sec, consume_row, system, n / (end - start), "events/s", events=n)
        plain_fill.close()
        self.results.unavailable(sec, consume_row, "openedx", "the Open edX event bus has no RabbitMQ "
                                 "implementation (Redis Streams and Kafka only)", "events/s")
        self.results.unavailable(sec, row, "openedx", "no RabbitMQ implementation of the Open edX event bus",
                                 "events/s")
        self.results.note(sec, "Consume end = the wall time at which the handler ran for the last expected event "
                               "(written by the handler; its ack follows in the same loop iteration): without the "
                               "management plugin AMQP gives no count of unacknowledged messages. Start = the first "
                               "time the ready count dropped below the pre-filled count (polled every 2 ms).")

    # =============================================================================================
    def not_measurable(self) -> None:
        sec = "What could not be measured here"
        rows = [
            ("Open edX event bus on RabbitMQ", "openedx", "not measurable",
             "edx-event-bus-redis is Redis Streams only; the other Open edX bus is Kafka (edx-event-bus-kafka), "
             "and there is no Kafka broker here"),
            ("publish / consume across machines (network round trips)", "ours", "not measurable",
             "one 2-core machine, loopback only: every round trip here is ~0.05 ms, so figures dominated by round "
             "trips (kombu's one LPUSH per queue, one confirm per publish) would be much slower on a real network"),
            ("prefork pool, several workers, several services consuming at once", "ours", "not measurable",
             "2 cores shared by producer, broker, database and workers: a multi-worker throughput figure would "
             "measure CPU contention, not the fabric"),
            ("Redis with AOF persistence (`appendfsync everysec`), as production requires", "ours", "not measurable",
             "the private Redis runs without persistence (like BROKER_FACTS.md's figures) so that disk does not "
             "dominate; production settings cost more per write for every system alike"),
        ]
        if self.vhost is None and "rabbitmq" not in self.sections:
            rows.append(("RabbitMQ rows", "ours", "not measured", "section not selected in this invocation"))
        for name, system, status, why in rows:
            self.results.unavailable(sec, name, system, why, "", status)
