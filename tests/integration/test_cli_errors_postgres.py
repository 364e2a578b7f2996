"""``manage.py events ...`` on a PostgreSQL database that was never migrated: one line naming the
database and ``migrate``, exit 2 (SQLite: ``tests/unit/test_cli_errors_manage.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "table"),
    [(["deadletters", "list"], "event_tasks_deadletter"), (["relay", "--once"], "event_tasks_outboxevent")],
)
def test_a_postgres_database_never_migrated_says_migrate(postgres_database, argv, table):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
        "EVENT_TASKS_SERVICE": "prober",
        "CELERY_BROKER_URL": "memory://",
        "DATABASE_URL": postgres_database.url,
        "DATABASE_POOL": "0",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "events", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"CommandError: The fabric's tables are missing in database 'default' ({postgres_database.name}; "
        f"no table {table}): run manage.py migrate"
    )
