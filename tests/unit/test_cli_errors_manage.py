"""``manage.py events ...`` as a person runs it (a real process): one line on stderr, the exit code,
no traceback; ``--traceback`` shows one. (The in-process cases, every command: ``test_cli_errors.py``.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TYPE = "org.openedx.learning.probe.created.v1"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(
    *argv: str, broker: str = "memory://", database: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
        "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.services",
        "EVENT_TASKS_SERVICE": "prober",
        "CELERY_BROKER_URL": broker,
    }
    # a database of the test's own (the demo settings give only the demo's services one under var/)
    env["DATABASE_URL"] = f"sqlite:///{database or Path(tempfile.mkdtemp(prefix='et-cli-')) / 'prober.sqlite3'}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", "events", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return done, time.monotonic() - started


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("CommandError: ")
    return lines[0]


def test_declare_on_an_unreachable_redis(tmp_path):
    port = closed_port()
    done, elapsed = manage("declare", broker=f"redis://:secret@127.0.0.1:{port}/0", database=tmp_path / "db.sqlite3")
    line = one_line(done)
    assert done.returncode == 2
    assert f"The broker at redis://:**@127.0.0.1:{port}/0 is not reachable" in line and "secret" not in line
    assert done.stdout == ""
    assert elapsed < 12  # Django's start-up and one connection attempt (the release step waited 14 s before)


def test_status_on_an_unsupported_broker_before_the_system_checks(tmp_path):
    done, _ = manage("status", broker="kafka://x", database=tmp_path / "db.sqlite3")
    assert done.returncode == 2
    assert "Unsupported broker 'kafka' in CELERY_BROKER_URL (kafka://x)" in one_line(done)


def test_send_on_an_unreachable_rabbitmq(tmp_path):
    port = closed_port()
    done, _ = manage("send", TYPE, "--data", '{"n": 1}', broker=f"amqp://guest:secret@127.0.0.1:{port}//")
    assert done.returncode == 2
    assert f"The broker at amqp://guest:**@127.0.0.1:{port}// is not reachable" in one_line(done)


@pytest.mark.parametrize(
    ("argv", "table"),
    [
        (["deadletters", "list"], "event_tasks_deadletter"),
        (["relay", "--once"], "event_tasks_outboxevent"),
        (["prune"], "event_tasks_processedevent"),
    ],
)
def test_a_database_never_migrated_says_migrate(tmp_path, argv, table):
    database = tmp_path / "never-migrated.sqlite3"
    done, _ = manage(*argv, database=database)
    assert done.returncode == 2
    assert one_line(done) == (
        f"CommandError: The fabric's tables are missing in database 'default' ({database}; no table {table}): "
        "run manage.py migrate"
    )


def test_traceback_shows_the_exception_behind_the_line(tmp_path):
    done, _ = manage("--traceback", "declare", broker=f"redis://127.0.0.1:{closed_port()}/0")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "kombu.exceptions.OperationalError" in done.stderr


def test_version():
    done, _ = manage("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"event-tasks {version('event-tasks')}"
