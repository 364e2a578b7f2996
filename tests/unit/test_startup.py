"""Misconfiguration fails at worker start-up with a clear message, never a silent no-op; a process
that only sends registers nothing."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBES = {
    "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.services",
    "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
}


def run(args, **env):
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "CELERY_BROKER_URL": "memory://", **env}
    for k, v in list(full.items()):
        if v is None:
            full.pop(k)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=90)


def start_worker(queue, **env):
    """Start a real worker that is expected to refuse to start (a hang fails by timeout)."""
    return run(
        [
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "worker",
            "-Q",
            queue,
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ],
        **env,
    )


def test_malformed_service_is_refused_at_worker_start():
    out = start_worker("events.x", EVENT_TASKS_SERVICE="Not-A-Name")
    assert out.returncode != 0
    assert "EVENT_TASKS_SERVICE='Not-A-Name' is not a service name" in out.stderr


def test_handler_for_unknown_event_type_is_refused_at_worker_start(tmp_path):
    pkg = tmp_path / "badconsumers"
    (pkg / "oops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "oops" / "__init__.py").write_text("")
    (pkg / "oops" / "handlers.py").write_text(
        "from event_tasks import consumer\n\n@consumer('org.openedx.learning.no_such.thing.v1')\n"
        "def handle(event):\n    pass\n"
    )
    out = start_worker(
        "events.oops",
        EVENT_TASKS_SERVICE="oops",
        EVENT_TASKS_CONSUMERS_PACKAGE="badconsumers",
        PYTHONPATH=f"{tmp_path}:{ROOT}",
    )
    assert out.returncode != 0
    assert "org.openedx.learning.no_such.thing.v1" in out.stderr and "oops" in out.stderr


def test_a_process_that_only_sends_registers_and_imports_nothing():
    out = run(
        [
            "-c",
            "import sys; from config.celery_app import app; import django; django.setup(); "
            "from event_tasks import send_event; "
            "print(sorted(t for t in app.tasks if t.startswith('org.')), "
            "[m for m in sys.modules if m.endswith('.handlers') and m.startswith('tests.')])",
        ],
        EVENT_TASKS_SERVICE="gamma",
        **PROBES,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] []"


def test_a_worker_of_the_service_registers_its_event_tasks():
    out = run(
        [
            "-c",
            "from config.celery_app import app; import django; django.setup(); "
            "from event_tasks.consume.worker import prepare_worker; prepare_worker(app); "
            "print(sorted(t for t in app.tasks if t.startswith('org.')))",
        ],
        EVENT_TASKS_SERVICE="gamma",
        **PROBES,
    )
    assert out.returncode == 0, out.stderr
    assert "org.openedx.learning.probe.created.v1" in out.stdout and "org.openedx.catalog" not in out.stdout


def test_handler_time_limit_past_rabbitmq_consumer_timeout_is_refused_at_worker_start():
    out = start_worker(
        "events.alpha",
        EVENT_TASKS_SERVICE="alpha",
        CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//",
        EVENT_TASKS_HANDLER_TIME_LIMIT="2000",
        **PROBES,
    )
    assert out.returncode != 0 and "consumer_timeout" in out.stderr


def test_a_worker_of_a_service_without_handlers_is_refused_at_start(tmp_path):
    database = f"sqlite:///{tmp_path / 'nobody.sqlite3'}"  # none of the demo's services: a database of its own
    out = start_worker("events.nobody", EVENT_TASKS_SERVICE="nobody", DATABASE_URL=database, **PROBES)
    assert out.returncode != 0
    assert "consumes events.nobody, but service 'nobody' has no handlers" in out.stderr


def test_an_ack_or_requeue_that_fails_leaves_the_message_to_the_broker(caplog):
    """The intake's ack of a dead-lettered message, or the put-back of a held one, on a lost
    connection: logged, the worker goes on (the broker hands the unacked message out again)."""
    from event_tasks.consume.refusals import settle

    def lost() -> None:
        raise ConnectionResetError("connection lost")

    settle(lost, "acknowledge")
    assert "could not acknowledge a message" in caplog.text
    done: list[bool] = []
    settle(lambda: done.append(True), "put back")
    assert done == [True]
