"""examples/standalone: an existing Django + Celery service (``notifier``) that adopted the fabric.

The example runs from its own directory against the installed library ``event_tasks`` and the
platform's shared catalog ``schemas``, installed separately (the wheel does not ship it: here a
directory that holds only a copy of this repository's ``schemas/``, on the example's
``PYTHONPATH``), with none of this repository's settings: its own settings module, database,
Celery app, queues and routes. On both brokers:

* its existing task keeps the host's route (``notifier.work``), task id and content type, and
  nothing of it reaches the event queue;
* its worker, started as ``celery -A notifier worker -Q events.notifier,notifier.work``, runs that
  task as before and applies the LMS's certificate event with the handler the example imports
  into its ``handlers`` module.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from celery import Celery
from kombu import Connection, Queue

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.conf import settings as fabric_settings
from event_tasks.send.publisher import Publisher
from event_tasks.testing import ServiceWorker, wait_until
from tests.integration.fabric import ROOT

pytestmark = pytest.mark.timeout(120)

EXAMPLE = ROOT / "examples" / "standalone"
SERVICE = "notifier"
HOST_QUEUE = "notifier.work"
EVENT_QUEUE = f"events.{SERVICE}"
CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"
COURSE = "course-v1:edX+DemoX+2026"
#: What this repository's processes read from the environment; the example must not see any of it.
MONOREPO_VARIABLES = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH")


def _is_monorepo_variable(name: str) -> bool:
    return name in MONOREPO_VARIABLES or name.startswith("EVENT_TASKS_") or name.endswith("_DATABASE_URL")


def _pythonpath_without_repo(value: str) -> str:
    """``PYTHONPATH`` minus the repository root (and empty entries, which mean the cwd)."""
    keep = [p for p in value.split(os.pathsep) if p and Path(p).resolve() != ROOT]
    return os.pathsep.join(keep)


def shared_catalog(directory: Path) -> Path:
    """The platform's shared catalog as the example's host installs it, apart from the library: a
    directory that holds only a copy of this repository's ``schemas`` package."""
    site = directory / "shared-catalog"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(ROOT / "schemas", site / "schemas", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def example_env(broker_url: str, database: Path, catalog_site: Path) -> dict[str, str]:
    """The example's whole environment: this process's, minus the monorepo's settings, with the
    shared catalog (``catalog_site``) on its path."""
    env = {k: v for k, v in os.environ.items() if not _is_monorepo_variable(k)}
    pythonpath = _pythonpath_without_repo(os.environ.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(catalog_site), pythonpath) if p)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "notifier.settings",
            "CELERY_BROKER_URL": broker_url,
            "NOTIFIER_DATABASE_URL": f"sqlite:///{database}",
        }
    )
    return env


def run_example(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(args)[:200]} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


# In the example's own process, as its web or shell process would: the host's .delay(), and where
# its imports come from (the installed packages; not this repository's source tree).
SEND_DIGEST = textwrap.dedent("""
    import django, importlib.util, json, os, sys
    django.setup()
    import event_tasks, schemas
    from notifier.digests.tasks import send_digest
    result = send_digest.delay(7)
    print(json.dumps({
        "id": result.id,
        "monorepo_importable": [m for m in ("config", "consumers", "tests") if importlib.util.find_spec(m)],
        "event_tasks": event_tasks.__file__, "schemas": schemas.__file__,
        "settings": os.environ["DJANGO_SETTINGS_MODULE"],
    }))
""")


def queue_depth(conn: Connection, name: str) -> int:
    """Messages waiting on ``name``; a queue never declared (or, on Redis, empty) holds 0."""
    with conn.channel() as ch:
        try:
            return ch.queue_declare(name, passive=True)[1]
        except conn.channel_errors:
            return 0


def query(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    con = sqlite3.connect(database, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


class Example:
    """The example service on one broker: its database, environment and (later) its worker."""

    def __init__(self, broker_url: str, directory: Path) -> None:
        self.broker_url = broker_url
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.database = self.dir / "notifier.sqlite3"
        self.catalog_site = shared_catalog(self.dir)
        self.env = example_env(broker_url, self.database, self.catalog_site)
        self.worker: ServiceWorker | None = None

    def start_worker(self) -> ServiceWorker:
        self.worker = ServiceWorker(
            SERVICE, env=self.env, log_dir=str(self.dir), app="notifier", extra_queues=(HOST_QUEUE,), cwd=str(EXAMPLE)
        )
        # ServiceWorker adds ``env`` to this process's environment: leave the monorepo's out.
        with mock.patch.dict(os.environ):
            for name in [k for k in os.environ if _is_monorepo_variable(k)]:
                del os.environ[name]
            self.worker.start(wait=False)
        self.worker.wait_ready(60)
        return self.worker

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return query(self.database, sql, params)

    def log_tail(self) -> str:
        return self.worker.output()[-3000:] if self.worker else ""


@pytest.fixture(scope="module")
def example(broker_url: str, workdir: Path) -> Example:
    """The example, migrated (its own ``manage.py migrate``), on this module's broker."""
    ex = Example(broker_url, workdir / f"standalone-{broker_url.split(':', 1)[0]}")
    run_example(ex.env, "manage.py", "migrate", "-v", "0")
    return ex


@pytest.fixture(scope="module")
def sent_digest(example: Example) -> dict[str, Any]:
    """The host's own task, sent before any worker runs, and its message as it waits on the broker."""
    sent = json.loads(run_example(example.env, "-c", SEND_DIGEST).strip().splitlines()[-1])
    with Connection(example.broker_url) as conn:
        with conn.channel() as channel:
            message = Queue(HOST_QUEUE)(channel).get(no_ack=False)
            assert message is not None, f"nothing on {HOST_QUEUE}"
            raw = {
                "task_id": message.headers.get("id"),
                "task": message.headers.get("task"),
                "content_type": message.content_type,
                "routing_key": message.delivery_info.get("routing_key"),
                "exchange": message.delivery_info.get("exchange"),
            }
            message.requeue()  # the worker started next runs it
        # (RabbitMQ requeues asynchronously: wait until it is back before counting.)
        wait_until(lambda: queue_depth(conn, HOST_QUEUE) == 1, 10, message=f"the message back on {HOST_QUEUE}")
        raw["depths"] = {name: queue_depth(conn, name) for name in (HOST_QUEUE, EVENT_QUEUE)}
    return {"sent": sent, "raw": raw}


@pytest.fixture(scope="module")
def notifier(example: Example, sent_digest: dict[str, Any]):
    """The example's worker: ``celery -A notifier worker -Q events.notifier,notifier.work``."""
    example.start_worker()
    yield example
    if example.worker is not None:
        example.worker.stop()


def send_certificate(lms: Publisher):
    """``org.openedx.learning.certificate.created.v1`` as the LMS sends it (a valid payload)."""
    return lms.send(
        CERTIFICATE_CREATED,
        {
            "certificate": {
                "user": {
                    "id": 42,
                    "is_active": True,
                    "pii": {"username": "ada", "email": "ada@example.com", "name": "Ada Lovelace"},
                },
                "course": {"course_key": COURSE, "display_name": "Demo course"},
                "mode": "verified",
                "grade": "0.92",
                "current_status": "downloadable",
                "previous_status": "",
                "download_url": "https://lms.example.com/certificates/ada-DemoX",
                "name": "Ada Lovelace",
            }
        },
        key=COURSE,
    )


def test_example_runs_on_the_installed_packages(example, sent_digest):
    sent = sent_digest["sent"]
    assert sent["settings"] == "notifier.settings"
    assert sent["monorepo_importable"] == []  # the repository root is not on its path
    # the library: the virtualenv's installed package, as here; the catalog: installed apart from it
    assert Path(sent["event_tasks"]).resolve() == Path(importlib.import_module("event_tasks").__file__).resolve()
    assert Path(sent["schemas"]).resolve() == (example.catalog_site / "schemas" / "__init__.py").resolve()


def test_existing_task_keeps_the_hosts_route_id_and_serializer(sent_digest):
    sent, raw = sent_digest["sent"], sent_digest["raw"]
    assert raw["task"] == "notifier.tasks.send_digest"
    assert raw["routing_key"] == HOST_QUEUE  # CELERY_TASK_ROUTES, as before install()
    assert raw["exchange"] == ""  # Celery sends a route that names only a queue through the default exchange
    assert raw["task_id"] == sent["id"]  # the id .delay() returned, no ":notifier"
    assert not raw["task_id"].endswith(f":{SERVICE}")
    assert raw["content_type"] == "application/json"
    assert raw["depths"] == {HOST_QUEUE: 1, EVENT_QUEUE: 0}  # requeued; the event queue got nothing


def test_worker_runs_the_existing_task_as_before(notifier, sent_digest):
    rows = wait_until(
        lambda: notifier.rows("SELECT * FROM digests_digest"),
        30,
        message=lambda: f"the Digest row; worker log: {notifier.log_tail()}",
    )
    assert [(r["user_id"], r["task_id"], r["routing_key"]) for r in rows] == [
        (7, sent_digest["sent"]["id"], HOST_QUEUE)
    ]
    assert rows[0]["exchange"] == sent_digest["raw"]["exchange"]
    assert notifier.rows("SELECT * FROM event_tasks_deadletter") == []


def test_worker_applies_the_lms_certificate_event(notifier):
    catalog.load("schemas")
    app = Celery("lms", broker=notifier.broker_url, set_as_current=False)
    install(app)
    lms = Publisher(app, "lms", fabric_settings())
    try:
        event = send_certificate(lms)
    finally:
        lms.transport.close()
    rows = wait_until(
        lambda: notifier.rows("SELECT * FROM digests_certificatenote"),
        30,
        message=lambda: f"the CertificateNote row; worker log: {notifier.log_tail()}",
    )
    assert [(r["event_id"], r["user_id"], r["username"], r["course_key"], r["mode"]) for r in rows] == [
        (event.id, 42, "ada", COURSE, "verified")
    ]
    handlers = [
        r["handler"] for r in notifier.rows("SELECT * FROM event_tasks_processedevent WHERE event_id = ?", (event.id,))
    ]
    assert handlers == ["notifier.digests.certificates.note_certificate"]
    assert notifier.rows("SELECT * FROM event_tasks_deadletter") == []
