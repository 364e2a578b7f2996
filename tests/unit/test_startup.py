"""Misconfiguration fails at start-up with a clear message, never a silent no-op."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def boot(**env):
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "CELERY_BROKER_URL": "memory://", **env}
    for k, v in list(full.items()):
        if v is None:
            full.pop(k)
    return subprocess.run([sys.executable, "-c", "import config.celery_app"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)


def test_unknown_service_is_refused():
    out = boot(EVENT_TASKS_SERVICE="nonesuch")
    assert out.returncode != 0
    assert "Unknown service 'nonesuch'" in out.stderr and "lms" in out.stderr


def test_handler_for_unknown_event_type_is_refused(tmp_path):
    pkg = tmp_path / "badconsumers"
    (pkg / "oops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "oops" / "__init__.py").write_text("")
    (pkg / "oops" / "handlers.py").write_text(
        "from event_tasks import consumer\n\n@consumer('org.openedx.learning.no_such.thing.v1')\n"
        "def handle(event):\n    pass\n")
    out = boot(EVENT_TASKS_SERVICE="oops", EVENT_TASKS_CONSUMERS_PACKAGE="badconsumers",
               PYTHONPATH=f"{tmp_path}:{ROOT}")
    assert out.returncode != 0
    assert "org.openedx.learning.no_such.thing.v1" in out.stderr and "oops" in out.stderr


def test_pickle_in_accept_content_is_refused():
    from celery import Celery

    from event_tasks.app import install
    from event_tasks.errors import ConfigurationError

    app = Celery("p", broker="memory://", set_as_current=False)
    unsafe = ["json", "pickle"]
    app.conf.accept_content = unsafe
    with pytest.raises(ConfigurationError, match="remove pickle"):
        install(app, worker=False)


def test_known_service_boots_and_registers_its_event_tasks():
    out = subprocess.run(
        [sys.executable, "-c", "from config.celery_app import app; "
         "print(sorted(t for t in app.tasks if t.startswith('org.')))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "CELERY_BROKER_URL": "memory://",
             "EVENT_TASKS_SERVICE": "gamma", "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.services",
             "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas"})
    assert out.returncode == 0, out.stderr
    assert "org.openedx.learning.probe.created.v1" in out.stdout and "org.openedx.catalog" not in out.stdout


def test_handler_time_limit_past_rabbitmq_consumer_timeout_is_refused():
    out = boot(EVENT_TASKS_SERVICE="alpha", EVENT_TASKS_CONSUMERS_PACKAGE="tests.fabric.services",
               EVENT_TASKS_SCHEMAS_PACKAGE="tests.fabric.schemas", CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//",
               EVENT_TASKS_HANDLER_TIME_LIMIT="2000")
    assert out.returncode != 0 and "consumer_timeout" in out.stderr
