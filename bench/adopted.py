"""An outside service adopted by the README's steps ("Adopting it in an existing service").

A Django project written into the bench's temp dir the way a service starts: ``django-admin
startproject proj`` and ``manage.py startapp awards`` (the service's own app), the usual Celery
module (``proj/celery.py``, ``proj/__init__.py``) and its own broker URL. To that, only the README's
lines: ``INSTALLED_APPS += ["event_tasks"]``, ``EVENT_TASKS_SERVICE``,
``EVENT_TASKS_SCHEMAS_PACKAGE`` (the bench's catalog, ``schemas``), ``install(app)``, a no-op
``@consumer`` in ``awards/handlers.py``, and (variant by variant) the database lines of the fast path:

* ``sqlite``: ``CELERY_DB_REUSE_MAX = 1000``, ``CONN_MAX_AGE = None`` and the SQLite ``OPTIONS``
  (timeout, IMMEDIATE, WAL);
* ``pg``: the service's PostgreSQL ``DATABASES`` plus ``CELERY_DB_REUSE_MAX = 1000`` and the pool
  (``OPTIONS["pool"] = True``, psycopg 3's pool, Django's ``CONN_MAX_AGE = 0``);
* ``defaults``: none of them (SQLite as ``startproject`` writes it, connections closed per task):
  what a service gets when it stops at the first block of the README.

The lines are the README's, copied (``ADOPTION``, ``FAST_PATH``): when the README's steps change,
change them here.

Nothing of the bench's own settings (``config/``) is used: the worker is ``celery -A proj worker``
run in the project's directory with ``DJANGO_SETTINGS_MODULE`` unset (``proj/celery.py`` sets it);
``PYTHONPATH`` names this checkout only so that ``schemas`` (the catalog) and ``bench.services``
(the handler's call counter) import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from .workers import PY, ROOT, Proc, worker_command

SERVICE = "credentials"
APP = "awards"
VARIANTS = ("sqlite", "pg", "defaults")

CELERY = """
    import os

    from celery import Celery

    from event_tasks.app import install

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    install(app)
"""
INIT = """
    from .celery import app as celery_app

    __all__ = ("celery_app",)
"""
HANDLERS = """
    from bench.services import count  # the bench's call counter (BENCH_DONE_AT / BENCH_DONE_FILE)
    from event_tasks import Event, consumer


    @consumer("org.openedx.learning.certificate.created.v1")
    def record_certificate(event: Event) -> None:
        count()
"""
# The README's lines, "Adopting it in an existing service".
ADOPTION = f"""
    # --- README, "Adopting it in an existing service" ---
    INSTALLED_APPS += ["event_tasks"]  # dead letters, outbox, duplicate marks: run migrate
    EVENT_TASKS_SERVICE = "{SERVICE}"  # this service's name: its queue is events.{SERVICE}
    EVENT_TASKS_SCHEMAS_PACKAGE = "schemas"  # the platform's shared catalog (the bench's)
"""
# The README's database lines, "The database fast path".
FAST_PATH = {
    "sqlite": """
        # --- README, the database fast path (SQLite) ---
        CELERY_DB_REUSE_MAX = 1000
        DATABASES["default"]["CONN_MAX_AGE"] = None
        DATABASES["default"]["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    """,
    "pg": """
        # --- README, the database fast path (PostgreSQL) ---
        CELERY_DB_REUSE_MAX = 1000
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = True  # psycopg 3's pool (CONN_MAX_AGE stays 0)
    """,
    "defaults": "",
}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of an outside service's process: none of the bench's own settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVENT_TASKS_", "DJANGO_", "CELERY_", "BENCH_")) and k != "DATABASE_URL"
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


class AdoptedService:
    """One variant's project directory, migrated once; a fresh database for every run."""

    def __init__(self, bench: Any, variant: str) -> None:  # Any: bench.common.Harness (imports this module)
        assert variant in VARIANTS, variant
        self.bench = bench
        self.variant = variant
        self.dir = bench.tmp / f"adopted-{variant}"
        self.pg: Any = None  # Any: tests.brokers.PrivatePostgres (the bench's private database)
        self.db_file = self.dir / "db.sqlite3"
        self.template = self.dir / "template.sqlite3"

    def run(self, *argv: str, cwd: Path | None = None) -> str:
        out = subprocess.run(
            [PY, *argv], cwd=cwd or self.dir, env=clean_env(), capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"adopted-{self.variant}: {' '.join(argv)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def write(self) -> AdoptedService:
        """startproject + startapp, the README's lines, migrate (a template database for SQLite)."""
        self.dir.mkdir(parents=True)
        self.run("-m", "django", "startproject", "proj", str(self.dir), cwd=self.bench.tmp)
        self.run("manage.py", "startapp", APP)
        (self.dir / "proj" / "celery.py").write_text(dedent(CELERY))
        (self.dir / "proj" / "__init__.py").write_text(dedent(INIT))
        (self.dir / APP / "handlers.py").write_text(dedent(HANDLERS))
        own = [
            "# --- the service's own configuration (there before the fabric) ---",
            f'INSTALLED_APPS += ["{APP}"]',
            f'CELERY_BROKER_URL = "{self.bench.url}"',
        ]
        if self.variant == "pg":
            from .brokers import PrivatePostgres

            self.pg = PrivatePostgres("et_bench_adopted").start()
            self.bench.extras.append(self.pg)
            own.append(
                'DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", '
                f'"NAME": "{self.pg.name}", "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}}}'
            )
        settings = self.dir / "proj" / "settings.py"
        text = settings.read_text().rstrip() + "\n\n" + "\n".join(own) + "\n\n" + dedent(ADOPTION)
        if FAST_PATH[self.variant]:
            text += "\n" + dedent(FAST_PATH[self.variant])
        settings.write_text(text)
        self.run("manage.py", "migrate", "-v", "0")
        if self.pg is None:
            shutil.copy(self.db_file, self.template)
        return self

    def settings_text(self) -> str:
        return (self.dir / "proj" / "settings.py").read_text()

    def fresh_db(self) -> str:
        """A fresh database for one run (the migrated template copied; PostgreSQL: tables truncated)."""
        if self.pg is not None:
            tables = self.pg.psql(
                "SELECT string_agg(tablename, ', ') FROM pg_tables WHERE tablename LIKE 'event\\_tasks\\_%'"
            ).strip()
            self.pg.psql(f"TRUNCATE {tables} RESTART IDENTITY")
            return self.pg.url
        for suffix in ("-wal", "-shm"):
            Path(f"{self.db_file}{suffix}").unlink(missing_ok=True)
        shutil.copy(self.template, self.db_file)
        return f"sqlite:///{self.db_file}"

    def worker(self, **env: str) -> Proc:
        """``celery -A proj worker -Q events.<service> -P solo`` with the bench's worker flags."""
        command = worker_command("proj", f"events.{SERVICE}", f"adopted-{self.variant}")
        return self.bench.proc(command, clean_env(**env), f"worker-adopted-{self.variant}", cwd=self.dir)


ROWS = {
    "adopted": "no-op handler, duplicate suppression on, SQLite, an outside service adopted by the README's steps",
    "adopted-pg": "no-op handler, duplicate suppression on, PostgreSQL, an outside service adopted by the README's steps",
    "adopted-defaults": "no-op handler, duplicate suppression on, SQLite, the same outside service without the "
    "README's database lines (Django's defaults)",
}
VARIANT_OF = {"adopted": "sqlite", "adopted-pg": "pg", "adopted-defaults": "defaults"}
NOTE = (
    "The outside service's rows: `celery -A proj worker -Q events.credentials` (the same worker flags) "
    "in a project `bench/adopted.py` writes into the temp dir: `django-admin startproject proj` "
    "(its settings as written: DEBUG on, SQLite `db.sqlite3`, no result backend, task events off), "
    "`manage.py startapp awards` with a no-op `@consumer` in `awards/handlers.py`, `proj/celery.py` "
    "with `install(app)`, and the README's lines (`INSTALLED_APPS`, `EVENT_TASKS_SERVICE`, "
    '`EVENT_TASKS_SCHEMAS_PACKAGE = "schemas"`; SQLite: `CELERY_DB_REUSE_MAX = 1000` and '
    "`OPTIONS` timeout 20, IMMEDIATE, WAL; PostgreSQL: the service's own `DATABASES` entry, "
    '`CELERY_DB_REUSE_MAX = 1000` and `OPTIONS = {"pool": True}`); `manage.py migrate` once, '
    "the migrated file copied (PostgreSQL: the fabric's tables truncated) before every run."
)


def compare(results: Any, section: str) -> None:  # Any: bench.results.Results (the bench's rows)
    """A note: each outside-service row ÷ the bench's own worker on the same database (medians)."""

    def median(row: str) -> float | None:
        fig = results.row(section, row, "events/s").figures.get("ours")
        return fig.median if fig is not None else None

    own = {
        "sqlite": median("no-op handler, duplicate suppression on, SQLite"),
        "pg": median("no-op handler, duplicate suppression on, PostgreSQL"),
    }
    parts = []
    for system, row in ROWS.items():
        db = "pg" if system == "adopted-pg" else "sqlite"
        ours, theirs = median(row), own[db]
        if ours and theirs:
            what = "with the README's steps" if system != "adopted-defaults" else "with Django's defaults"
            parts.append(f"{'PostgreSQL' if db == 'pg' else 'SQLite'} {what} {ours / theirs:.2f}")
    if parts:
        results.note(section, "The outside service ÷ the bench's own worker on the same database: " + "; ".join(parts))
