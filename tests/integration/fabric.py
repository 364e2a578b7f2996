"""A small platform for delivery tests: real broker, real worker processes, a database per service
(SQLite files by default; PostgreSQL URLs with ``database_urls``)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Connection

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.conf import settings as fabric_settings
from event_tasks.handlers import ServiceHandlers, build, collect
from event_tasks.send.publisher import Publisher
from event_tasks.testing import ServiceWorker, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROBE_ENV = {
    "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.services",
    "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
}


def probe_handlers(service: str) -> ServiceHandlers:
    """A probe service's handlers, read from its module (the test process installs no probe apps)."""
    module = importlib.import_module(f"{PROBE_ENV['EVENT_TASKS_CONSUMERS_PACKAGE']}.{service}.handlers")
    return build(service, collect(module), PROBE_ENV["EVENT_TASKS_SCHEMAS_PACKAGE"])


def database_url(database: Path | str) -> str:
    """A SQLite file's URL, or ``database`` itself when it already is a URL (``postgres://…``)."""
    return database if isinstance(database, str) and "://" in database else f"sqlite:///{database}"


def migrate(database: Path | str, env: dict[str, str], service: str | None = None) -> None:
    full = {
        **os.environ,
        **env,
        "DATABASE_URL": database_url(database),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    full.pop("EVENT_TASKS_SERVICE", None)
    if service:
        full["EVENT_TASKS_SERVICE"] = service
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=full, check=True)


class Platform:
    """Services as worker subprocesses on one broker, each with its own database (a SQLite file, or
    the migrated database ``database_urls[service]`` names)."""

    def __init__(
        self,
        broker_url: str,
        workdir: Path,
        env: dict[str, str] | None = None,
        template_db: Path | None = None,
        database_urls: dict[str, str] | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = {**PROBE_ENV, **(env or {})}
        self.template_db = template_db
        self.database_urls = dict(database_urls or {})
        self.workers: dict[str, ServiceWorker] = {}
        self._producer: Publisher | None = None

    # -- services -------------------------------------------------------------------------------
    def db_path(self, service: str) -> Path:
        return self.dir / f"{service}.sqlite3"

    def worker_env(self, service: str) -> dict[str, str]:
        """The environment of ``service``'s processes (its database, the broker, the probe packages)."""
        return {
            **self.env,
            "CELERY_BROKER_URL": self.broker_url,
            "DATABASE_URL": self.database_urls.get(service) or database_url(self.db_path(service)),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "TEST_RECORD_DIR": str(self.dir),
            "EVENT_TASKS_SERVICE": service,
        }

    def manage(self, service: str, *args: str) -> str:
        """Run ``manage.py`` as ``service`` (e.g. ``events deadletters list``); returns stdout."""
        env = {**os.environ, **self.worker_env(service)}
        out = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {out.stderr[-3000:]}")
        return out.stdout

    def tooling(
        self, *args: str, databases: tuple[str, ...] = (), check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``manage.py`` as an operator's tooling process (no service, every probe service's handlers),
        reading the databases of ``databases`` (``<SERVICE>_DATABASE_URL``). ``check``: fail on a non-zero exit."""
        full = {**os.environ, **self.worker_env("tooling"), **(env or {})}
        full.pop("EVENT_TASKS_SERVICE")
        full["DATABASE_URL"] = f"sqlite:///{self.dir / 'tooling.sqlite3'}"
        for service in databases:
            self.worker(service)  # its database file, migrated, even if its worker never starts
            full[f"{service.upper()}_DATABASE_URL"] = f"sqlite:///{self.db_path(service)}"
        out = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
        )
        if check and out.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {out.returncode}: {out.stderr[-3000:]}")
        return out

    def worker(self, service: str, env: dict[str, str] | None = None, **kwargs: Any) -> ServiceWorker:
        if service not in self.workers:
            db = self.db_path(service)
            if service not in self.database_urls and not db.exists():
                if self.template_db is not None:
                    shutil.copy(self.template_db, db)
                else:
                    migrate(db, self.env, service)
            self.workers[service] = ServiceWorker(
                service, env={**self.worker_env(service), **(env or {})}, log_dir=str(self.dir), **kwargs
            )
        return self.workers[service]

    def start(self, *services: str) -> None:
        for s in services:
            self.worker(s).start(wait=False)
        for s in services:
            self.worker(s).wait_ready()

    def stop_all(self) -> None:
        for w in self.workers.values():
            w.stop()

    # -- producing ------------------------------------------------------------------------------
    def producer(self, service: str = "prober") -> Publisher:
        if self._producer is None:
            catalog.load(self.env["EVENT_TASKS_SCHEMAS_PACKAGE"])
            app = Celery(f"producer-{service}", broker=self.broker_url, set_as_current=False)
            install(app)
            self._producer = Publisher(app, service, fabric_settings())
        return self._producer

    def send(self, event_type: str, data: dict[str, Any], key: str | None = None):
        return self.producer().send(event_type, data, key=key)

    # -- observing ------------------------------------------------------------------------------
    def seen(self, service: str) -> list[dict[str, Any]]:
        path = self.dir / f"{service}.jsonl"
        if not path.exists():
            return []
        text = path.read_text()
        complete = text[: text.rfind("\n") + 1]  # a handler may be writing the last line right now
        return [json.loads(line) for line in complete.splitlines()]

    def calls(self, service: str, event_id: str) -> int:
        return sum(1 for r in self.seen(service) if r["id"] == event_id)

    def query_connection(self, service: str) -> sqlite3.Connection:
        """A connection to ``service``'s database file (``with`` commits)."""
        return sqlite3.connect(self.db_path(service), timeout=30)

    def query(self, service: str, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.db_path(service), timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def results(self, service: str, event_id: str) -> list[sqlite3.Row]:
        return self.query(
            service,
            "SELECT task_id, status, task_name FROM django_celery_results_taskresult WHERE task_id LIKE ?",
            (event_id + "%",),
        )

    def processed(self, service: str, event_id: str) -> list[sqlite3.Row]:
        return self.query(service, "SELECT * FROM event_tasks_processedevent WHERE event_id = ?", (event_id,))

    def dead_letters(self, service: str) -> list[sqlite3.Row]:
        return self.query(service, "SELECT * FROM event_tasks_deadletter ORDER BY id")

    def wait_calls(self, service: str, event_id: str, count: int = 1, timeout: float = 30) -> None:
        wait_until(
            lambda: self.calls(service, event_id) >= count,
            timeout,
            message=lambda: (
                f"{service} to handle {event_id} {count}x (seen {self.calls(service, event_id)}); "
                f"log tail: {self.workers[service].output()[-2000:] if service in self.workers else ''}"
            ),
        )

    def queue_depths(self) -> dict[str, int]:
        with Connection(self.broker_url) as conn:
            depths = {}
            for name in [f"events.{s}" for s in self.workers]:
                with conn.channel() as ch:
                    try:
                        _, count, _ = ch.queue_declare(name, passive=True)
                    except Exception:
                        count = 0
                depths[name] = count
            return depths
