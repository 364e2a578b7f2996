"""No configuration loses an event: every worker that consumes an event queue is wired, or refuses.

An outside Django service (a project of its own in a temporary directory, none of this
repository's settings) whose Celery module never calls ``event_tasks.app.install``: it names its
app in ``EVENT_TASKS_CELERY_APP`` instead, as the Open edX guide allows. Before, such a worker
took ``events.<service>`` with Celery's own consumer and discarded every event ("Received
unregistered task ... The message has been ignored and discarded"). Now, on both brokers:

* ``celery -A proj worker -Q events.svc`` (the app named by the setting) applies the events;
* ``celery -A proj.celery:other worker -Q events.svc`` (a second app of the project that no one
  installed) applies them too;
* ``manage.py consume_events -t ... -g svc`` (openedx-events' command, ``EVENT_BUS_CONSUMER``) too;
* a worker that consumes another service's event queue, or an event queue without
  ``EVENT_TASKS_SERVICE``, refuses to start with a message that says what to do, and the events
  wait in the queue for the right worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from event_tasks import catalog
from event_tasks.conf import Settings
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT

pytestmark = pytest.mark.timeout(240)

SETTINGS = """
    import os
    from pathlib import Path

    HERE = Path(__file__).resolve().parent.parent
    SECRET_KEY = "outside-service"
    USE_TZ = True
    INSTALLED_APPS = ["django.contrib.contenttypes", "openedx_events", "event_tasks", "svc"]
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(HERE / "svc.sqlite3")}}
    CELERY_BROKER_URL = os.environ["BROKER_URL"]
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    EVENT_TASKS_SERVICE = os.environ.get("SERVICE", "svc") or None
    EVENT_TASKS_SCHEMAS_PACKAGE = "tests.fabric.schemas"
    EVENT_TASKS_CELERY_APP = "proj.celery:app"
    EVENT_BUS_CONSUMER = "event_tasks.openedx.EventTasksConsumer"
"""
CELERY = """
    import os

    from celery import Celery

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

    # No event_tasks.app.install(app) here: EVENT_TASKS_CELERY_APP names the app instead.
    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")

    # A second app of the project, which nobody passes to install() either.
    other = Celery("other")
    other.config_from_object("django.conf:settings", namespace="CELERY")
"""
HANDLERS = """
    import os

    from event_tasks import Event, consumer
    from tests.fabric.schemas.probe import PROBE_CREATED


    @consumer(PROBE_CREATED)
    def on_probe(event: Event) -> None:
        with open(os.environ["SEEN_FILE"], "a") as out:
            out.write(event.id + "\\n")
"""
MANAGE = """
    import os
    import sys

    if __name__ == "__main__":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture(scope="module")
def outside(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outside service's project directory, migrated."""
    here = tmp_path_factory.mktemp("outside")
    write(here / "proj" / "__init__.py", "")
    write(here / "proj" / "settings.py", SETTINGS)
    write(here / "proj" / "celery.py", CELERY)
    write(here / "svc" / "__init__.py", "")
    write(here / "svc" / "handlers.py", HANDLERS)
    write(here / "manage.py", MANAGE)
    run(here, broker_url, [sys.executable, "manage.py", "migrate", "-v", "0"])
    return here


def environment(here: Path, broker_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_TASKS_", "DJANGO_", "CELERY_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(here), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "proj.settings",
            "BROKER_URL": broker_url,
            "SEEN_FILE": str(here / "seen.txt"),
            **extra,
        }
    )
    return env


def run(here: Path, broker_url: str, argv: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        argv, cwd=here, env=environment(here, broker_url, **extra), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


class Worker:
    def __init__(self, here: Path, broker_url: str, argv: list[str], name: str, **extra: str) -> None:
        self.log = here / f"{name}.log"
        self.process = subprocess.Popen(
            argv,
            cwd=here,
            env=environment(here, broker_url, **extra),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture
def start(outside: Path, broker_url: str) -> Iterator:
    started: list[Worker] = []

    def go(argv: list[str], name: str, **extra: str) -> Worker:
        worker = Worker(outside, broker_url, argv, name, **extra)
        started.append(worker)
        return worker

    yield go
    for worker in started:
        worker.stop()


def producer(broker_url: str) -> Publisher:
    catalog.load("tests.fabric.schemas")
    app = Celery("producer", broker=broker_url, set_as_current=False)
    return Publisher(app, "prober", Settings(service="prober", schemas_package="tests.fabric.schemas"))


def seen(here: Path) -> list[str]:
    path = here / "seen.txt"
    return path.read_text().split() if path.exists() else []


def celery_worker(app: str, queue: str = "events.svc") -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "-P",
        "solo",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


CASES = {
    "the app EVENT_TASKS_CELERY_APP names": celery_worker("proj"),
    "a second app nobody installed": celery_worker("proj.celery:other"),
    "consume_events": [
        sys.executable,
        "manage.py",
        "consume_events",
        "-t",
        "probe",
        "-g",
        "svc",
        "--extra",
        '{"pool": "solo", "loglevel": "INFO"}',
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_worker_of_an_app_never_passed_to_install_applies_the_events(case, outside, broker_url, start):
    worker = start(CASES[case], case.replace(" ", "-"))
    wait_until(
        lambda: " ready." in worker.output() or worker.process.poll() is not None,
        90,
        message=lambda: f"the worker to start: {worker.output()[-3000:]}",
    )
    assert worker.process.poll() is None, worker.output()[-3000:]
    assert "was not passed to event_tasks.app.install(): installed now" in worker.output()
    sent = [producer(broker_url).send(PROBE_CREATED, {"n": i}).id for i in range(3)]
    wait_until(
        lambda: set(sent) <= set(seen(outside)), 60, message=lambda: f"3 events applied: {worker.output()[-3000:]}"
    )
    assert "unregistered task" not in worker.output()
    assert "discarded" not in worker.output()


@pytest.mark.parametrize(
    ("queue", "service", "says"),
    [
        ("events.svc,events.other", "svc", "consumes events.other: another service's events"),
        ("events.svc", "", "EVENT_TASKS_SERVICE is not set"),
    ],
)
def test_a_worker_that_cannot_run_an_event_queue_refuses_to_start(queue, service, says, outside, broker_url, start):
    run(outside, broker_url, [sys.executable, "manage.py", "events", "declare"])  # the release step binds events.svc
    event = producer(broker_url).send(PROBE_CREATED, {"n": 99})  # waiting in events.svc
    worker = start(celery_worker("proj", queue), f"refused-{service or 'none'}", SERVICE=service)
    wait_until(lambda: worker.process.poll() is not None, 90, message=lambda: f"the worker to exit: {worker.output()}")
    assert worker.process.returncode != 0
    assert says in worker.output()
    assert "Traceback" not in worker.output()
    assert event.id not in seen(outside)
    # Nothing was taken: the event waited in the queue for the service's own worker.
    right = start(celery_worker("proj"), f"right-{service or 'none'}")
    wait_until(lambda: event.id in seen(outside), 90, message=lambda: f"the event applied: {right.output()[-3000:]}")
