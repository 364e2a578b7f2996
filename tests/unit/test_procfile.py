"""The Procfile's lines are what docs/operations.md says a deploy runs, and its workers feed Flower."""

from __future__ import annotations

import re
import shlex

from demo.platform import procfile_processes
from event_tasks.handlers import consuming_services
from tests.integration.fabric import ROOT

PROCESSES = procfile_processes(ROOT / "Procfile")


def test_release_declares_and_every_consuming_service_has_a_named_worker():
    assert PROCESSES["release"] == "python manage.py events declare"
    workers = {name[len("worker_") :]: line for name, line in PROCESSES.items() if name.startswith("worker_")}
    assert set(workers) == set(consuming_services())
    for service, line in workers.items():
        args = shlex.split(line)
        assert f"EVENT_TASKS_SERVICE={service}" in args
        # its event queue, and the queue of the maintenance task the beat line schedules (pruning)
        assert args[args.index("-Q") + 1] == f"events.{service},maintenance.{service}"
        assert args[args.index("-n") + 1] == f"{service}@%h"  # Flower's and Prometheus' worker label
        # Flower sees only what the workers send: nothing may switch their events or heartbeats off.
        assert not {"--without-heartbeat", "--without-events"} & set(args), line


def test_workers_send_task_events_in_every_settings_module():
    from config.settings import base, local, test  # production adds nothing to base here

    for module in (base, local, test):
        assert module.CELERY_WORKER_SEND_TASK_EVENTS is True, module.__name__


def test_flower_and_metrics_lines():
    assert re.fullmatch(r"celery -A config.celery_app flower --port=\$\{FLOWER_PORT:-\d+\}", PROCESSES["flower"])
    assert PROCESSES["metrics"].startswith("python manage.py events metrics ")
