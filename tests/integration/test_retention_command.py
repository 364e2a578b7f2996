"""``python manage.py events prune`` as a service's process, on a SQLite file and on PostgreSQL: old
rows go, new and unhandled ones stay; bad retention settings are refused before anything is deleted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.fabric import PROBE_ENV, ROOT
from tests.integration.test_outbox_claims import Database, database  # noqa: F401 - the fixture

pytestmark = [pytest.mark.timeout(300)]
OLD, NEW = "2000-01-01 00:00:00+00:00", "2999-01-01 00:00:00+00:00"  # NEW: in the future, never pruned


def manage(db: Database, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        **PROBE_ENV,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EVENT_TASKS_SERVICE": "prober",
        "DATABASE_URL": db.url,
        **env,
    }
    full.pop("PROBER_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=180
    )


def seed(db: Database) -> None:
    statements = []
    for i, when in enumerate([OLD, OLD, NEW]):
        statements += [
            (
                "INSERT INTO event_tasks_processedevent (event_id, handler, service, event_type, processed_at, duplicates) "
                "VALUES (?, 'h', 'prober', 't', ?, 0)",
                (f"e{i}", when),
            ),
            (
                "INSERT INTO event_tasks_redelivery (task_id, retries, count, last_at) VALUES (?, 0, 1, ?)",
                (f"e{i}:prober", when),
            ),
            (
                "INSERT INTO django_celery_results_taskresult (task_id, status, result, date_done, date_created, "
                "content_type, content_encoding, meta, traceback, task_args, task_kwargs) "
                "VALUES (?, 'SUCCESS', '\"personal\"', ?, ?, 'application/json', 'utf-8', '{}', '', '', '')",
                (f"e{i}:prober", when, when),
            ),
        ]
    statements += [
        (
            "INSERT INTO django_celery_results_taskresult (task_id, status, result, date_done, date_created, content_type, "
            "content_encoding, meta, traceback, task_args, task_kwargs) VALUES ('host-task', 'SUCCESS', '1', ?, ?, "
            "'application/json', 'utf-8', '{}', '', '', '')",
            (OLD, OLD),
        ),  # the host's own: stays
        *[
            (
                "INSERT INTO event_tasks_deadletter (service, event_id, event_type, task_id, reason, detail, traceback, "
                "attempts, raw, created_at, replayed_at, replays) VALUES ('prober', ?, 't', '', 'max_retries', '', '', 1, "
                "'', ?, ?, 0)",
                (f"d{i}", OLD, replayed),
            )
            for i, replayed in enumerate([OLD, None])
        ],
    ]
    con = db.connect()
    try:
        cur = con.cursor()
        for sql, params in statements:
            cur.execute(db._sql(sql), params)
        con.commit()
    finally:
        con.close()


def counts(db: Database) -> dict[str, int]:
    tables = {
        "marks": "event_tasks_processedevent",
        "redeliveries": "event_tasks_redelivery",
        "results": "django_celery_results_taskresult",
        "letters": "event_tasks_deadletter",
    }
    return {name: db.query(f"SELECT count(*) FROM {table}")[0][0] for name, table in tables.items()}


def test_events_prune_in_a_service_process(database: Database):  # noqa: F811 - the fixture
    assert manage(database, "migrate", "-v", "0").returncode == 0
    seed(database)
    before = counts(database)
    assert before == {"marks": 3, "redeliveries": 3, "results": 4, "letters": 2}

    refused = manage(database, "events", "prune", EVENT_TASKS_KEEP_PROCESSED_DAYS="0.05")
    assert refused.returncode != 0 and "EVENT_TASKS_KEEP_PROCESSED_DAYS=0.05 keeps duplicate marks" in refused.stderr
    assert counts(database) == before

    dry = manage(database, "events", "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 duplicate marks, 2 redelivery counts, 1 dead letters, 0 outbox, 2 task results" in dry.stdout
    assert counts(database) == before

    done = manage(database, "events", "prune", EVENT_TASKS_PRUNE_BATCH="1")
    assert done.returncode == 0, done.stderr
    assert "deleted 2 duplicate marks, 2 redelivery counts, 1 dead letters, 0 outbox, 2 task results" in done.stdout
    assert counts(database) == {"marks": 1, "redeliveries": 1, "results": 2, "letters": 1}
    assert database.query("SELECT task_id FROM django_celery_results_taskresult ORDER BY task_id") == [
        ("e2:prober",),
        ("host-task",),
    ]
