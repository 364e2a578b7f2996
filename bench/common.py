"""What every bench section shares: the private brokers and databases, the worker and producer
processes, the plain-Celery comparators, the pre-filled queues, and the rows (``bench.results``).

A section (``bench/sections/<name>.py``) gets one ``Harness`` and uses only what is here."""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .results import Results

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
BATCH_SIZE = 100  # events per `send_events` call and per `@consumer(..., batch=)` (every section)


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


class Harness:
    """The state of one bench invocation: sizes, private brokers and databases, started processes, rows."""

    def __init__(self, rounds: int, scale: float, sections: list[str], out_dir: Path, argv: list[str]) -> None:
        self.rounds = rounds
        self.scale = scale
        self.sections = sections
        self.out_dir = out_dir
        self.command = shlex.join([python_cmd(), "-m", "bench", *argv])
        # the command without --only: a section's own command adds --only=<section>
        self.base = (
            [python_cmd(), "-m", "bench"]
            + ([f"--rounds={rounds}"] if rounds != 3 else [])
            + ([f"--scale={scale:g}"] if scale != 1.0 else [])
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="et-bench-"))
        self.results = Results(self.command, {})
        self.redis = None
        self.pg = None
        self.vhost = None
        self.procs: list[Any] = []
        self.extras: list[Any] = []  # other private things to stop at the end (e.g. bench.adopted's databases)

    def n(self, count: int, floor: int = 50) -> int:
        return max(floor, int(count * self.scale))

    # -- set-up -----------------------------------------------------------------------------------
    def setup(self) -> None:
        from .brokers import PrivateRedis

        self.redis = PrivateRedis().start()
        self.url = self.redis.url
        self.client = self.redis.client()
        os.environ.pop("CELERY_BROKER_URL", None)  # Celery would prefer it to every app's own broker
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": f"sqlite:///{self.tmp / 'bench-process.sqlite3'}",
                "EVENT_TASKS_SERVICE": "lms",
                "EVENT_TASKS_CONSUMERS_PACKAGE": "bench.services",
                "EVENT_TASKS_SCHEMAS_PACKAGE": "schemas",
            }
        )
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
            except Exception:
                pass
        for thing in (*self.extras, self.vhost, self.pg, self.redis):
            if thing is not None:
                try:
                    thing.stop()
                except Exception as exc:
                    print(f"cleanup of {thing!r} failed: {exc}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------------
    def send_through(self, url: str) -> None:
        """Make ``send_event`` / ``send_events`` in this process publish to ``url`` (the private
        broker, or a proxy in front of it): a new Celery app installed on it (the last installed
        app is the one the fabric's default publisher uses) and a new default publisher."""
        from celery import Celery

        from event_tasks.app import install
        from event_tasks.send.publisher import reset_default_publisher

        install(Celery(f"bench-producer-{uuid.uuid4().hex[:6]}", broker=url, set_as_current=False))
        reset_default_publisher()

    def flush(self) -> None:
        """Empty the private Redis (only ours: the machine's shared Redis is never touched)."""
        self.client.flushall()

    def declare(self, services: list[str], url: str | None = None) -> None:
        from kombu import Connection

        from event_tasks.brokers.topology import declare, service_queue

        from .payload import CERTIFICATE_CREATED

        with Connection(url or self.url) as conn:
            declare(conn, [service_queue(s, [CERTIFICATE_CREATED]) for s in services])

    def proc(self, command: list[str], env: dict[str, str], name: str, cwd: Path | None = None):
        from .workers import Proc

        p = Proc(command, env, self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.log", cwd or ROOT)
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
        self.pg.psql(
            "TRUNCATE event_tasks_processedevent, event_tasks_deadletter, event_tasks_redelivery, "
            "event_tasks_outboxevent, django_celery_results_taskresult RESTART IDENTITY"
        )
        return url

    def db_count(self, db_url: str, sql: str) -> int:
        if db_url.startswith("sqlite:///"):
            con = sqlite3.connect(db_url[len("sqlite:///") :], timeout=30)
            try:
                return int(con.execute(sql).fetchone()[0])
            finally:
                con.close()
        import psycopg

        with psycopg.connect(db_url.replace("postgres://", "postgresql://"), autocommit=True) as con:
            return int(con.execute(sql).fetchone()[0])

    def db_rows(self, db_url: str, sql: str) -> list[tuple]:
        if db_url.startswith("sqlite:///"):
            con = sqlite3.connect(db_url[len("sqlite:///") :], timeout=30)
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
        return (
            f"result backend {backend!r}{' (extended)' if getattr(settings, 'CELERY_RESULT_EXTENDED', False) else ''}, "
            f"task events {'on' if events else 'off'}, "
            + (
                f"`CELERY_DB_REUSE_MAX={reuse}` (database connections kept across tasks)"
                if reuse
                else "no `CELERY_DB_REUSE_MAX` (Celery's Django fix-up closes the database connection around every task)"
            )
        )

    def payloads(self) -> list[dict[str, Any]]:
        from .payload import certificate

        return [certificate(i) for i in range(16)]

    # -- processes: our workers, plain Celery's, the Open edX consumer ------------------------------
    def fabric_worker(self, service: str, broker_url: str, db_url: str, **env: str):
        from .workers import fabric_env, worker_command

        return self.proc(
            worker_command("config.celery_app", f"events.{service}", service),
            fabric_env(service, broker_url, db_url, **env),
            f"worker-{service}",
        )

    def plain_worker(self, broker_url: str, **env: str):
        from .workers import fabric_env, worker_command

        e = fabric_env(None, broker_url, "sqlite:///unused", BENCH_PLAIN_QUEUE="events.plain", **env)
        for k in (
            "DJANGO_SETTINGS_MODULE",
            "DATABASE_URL",
            "EVENT_TASKS_CONSUMERS_PACKAGE",
            "EVENT_TASKS_SCHEMAS_PACKAGE",
        ):
            e.pop(k, None)
        return self.proc(worker_command("bench.plain_celery", "events.plain", "plain"), e, "worker-plain")

    def openedx_consumer(self, group: str, mode: str, url: str | None = None, **env: str):
        """The Open edX bus consumer process on ``url`` (default: the private Redis)."""
        from .workers import PY, fabric_env

        url = url or self.url
        e = fabric_env(None, url, "sqlite:///unused", **env)
        for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL"):
            e.pop(k, None)
        return self.proc(
            [PY, "-m", "bench.openedx_bus", "consume", "--url", url, "--group", group, "--mode", mode],
            e,
            f"openedx-{group}",
        )

    def plain_queue(self, url: str) -> None:
        from kombu import Connection, Exchange, Queue

        from .payload import CERTIFICATE_CREATED

        with Connection(url) as conn, conn.channel() as ch:
            Queue(
                "events.plain",
                Exchange("events", type="topic", durable=True),
                routing_key=CERTIFICATE_CREATED,
                durable=True,
            )(ch).declare()

    def plain_sender(self, url: str, confirm: bool = False, transport_options: dict[str, Any] | None = None):
        """Plain Celery's ``send(i)``: ``send_task`` on a producer of its own; ``transport_options``
        (e.g. Sentinel's ``master_name``) go to its app's ``broker_transport_options``."""
        from celery import Celery
        from kombu import Exchange

        from .payload import CERTIFICATE_CREATED, envelope

        data = self.payloads()
        app = Celery(f"plain-{uuid.uuid4().hex[:4]}", broker=url, set_as_current=False)
        app.conf.task_serializer = "json"
        options = dict(transport_options or {})
        if confirm:
            options["confirm_publish"] = True
        if options:
            app.conf.broker_transport_options = options
        exchange = Exchange("events", type="topic", durable=True)
        ctx = app.producer_or_acquire()
        producer = ctx.__enter__()

        def send(i: int) -> None:
            app.send_task(
                CERTIFICATE_CREATED,
                args=[envelope(i), data[i % 16]],
                exchange=exchange,
                routing_key=CERTIFICATE_CREATED,
                declare=[exchange],
                producer=producer,
            )

        def close() -> None:
            ctx.__exit__(None, None, None)
            app.close()  # its connection pool too: no connection left open after the section

        send.close = close  # type: ignore[attr-defined]
        return send

    # -- pre-filled queues (DUMP / RESTORE: every run drains the same messages) ---------------------
    def fill_ours(self, service: str, n: int) -> bytes:
        """Pre-fill ``events.<service>`` with n events through send_event; returns the list's DUMP."""
        import event_tasks

        from .payload import CERTIFICATE_CREATED, COURSE_KEY

        self.flush()
        self.declare([service])
        self.send_through(self.url)  # an earlier section may have pointed send_event elsewhere
        data = self.payloads()
        for i in range(n):
            event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
        assert self.client.llen(f"events.{service}") == n
        return self.client.dump(f"events.{service}")

    def restore(self, key: str, blob: bytes) -> None:
        self.flush()
        self.client.restore(key, 0, blob, replace=True)
