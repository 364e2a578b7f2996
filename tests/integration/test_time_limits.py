"""A handler that never returns, on real brokers with a prefork worker, on SQLite and PostgreSQL.

The delivery passes its hard time limit: billiard kills the pool process, the worker's main
process sends the delivery back to its service's queue counting the time-out in the copy's
headers (no database write there: the hung handler holds SQLite's write lock, or its duplicate
mark's row lock, until it is killed), and after ``EVENT_TASKS_MAX_REDELIVERIES`` time-outs the
event is a ``time_limit`` dead letter. Meanwhile the worker keeps handling other events.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from event_tasks.testing import wait_until
from tests.brokers import PrivatePostgres
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT, Platform

pytestmark = pytest.mark.timeout(180)

LIMITS = {"EVENT_TASKS_HANDLER_TIME_LIMIT": "2", "EVENT_TASKS_MAX_REDELIVERIES": "2", "CELERY_WORKER_LOST_WAIT": "0.5"}


class Database:
    """Rows of the service's database, SQLite (the platform's file) or PostgreSQL (a database of its own)."""

    def __init__(self, kind: str, plat: Platform, service: str) -> None:
        self.kind, self.plat, self.service = kind, plat, service
        self.pg: PrivatePostgres | None = None
        self.env: dict[str, str] = {}
        if kind == "postgres":
            self.pg = PrivatePostgres().start()
            self.env = {"DATABASE_URL": self.pg.url}
            full = {**os.environ, **plat.worker_env(service), **self.env}
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=full, check=True)

    def rows(self, sql: str, *params: object) -> list[dict[str, object]]:
        if self.pg is None:
            return [dict(r) for r in self.plat.query(self.service, sql, params)]
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.pg.url, row_factory=dict_row) as con:
            return list(con.execute(sql.replace("?", "%s"), params).fetchall())

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_handler_that_never_returns_ends_as_time_limit_dead_letter_and_worker_goes_on(
    broker_url: str, workdir: Path, probe_template_db: Path, db: str
) -> None:
    name = f"time-limits-{broker_url.split(':', 1)[0]}-{db}"
    plat = Platform(broker_url, workdir / name, env=LIMITS, template_db=probe_template_db)
    database = Database(db, plat, "alpha")
    worker = plat.worker("alpha", pool="prefork", concurrency=2, env=database.env)
    try:
        worker.start()
        hung = plat.send(PROBE_CREATED, {"n": 1}, key="always_slow:alpha:100000")
        plat.wait_calls("alpha", hung.id)
        healthy = plat.send(PROBE_CREATED, {"n": 2})  # sent while the first handler hangs
        plat.wait_calls("alpha", healthy.id, timeout=30)

        letters = wait_until(
            lambda: database.rows(
                "SELECT reason, detail, attempts FROM event_tasks_deadletter WHERE event_id = ?", hung.id
            ),
            60,
            message=lambda: f"a time_limit dead letter; log: {worker.output()[-3000:]}",
        )
        assert [r["reason"] for r in letters] == ["time_limit"], letters
        assert "2 times" in str(letters[0]["detail"])
        assert plat.calls("alpha", hung.id) == 2  # two attempts ran, each killed at the limit
        assert database.rows("SELECT * FROM event_tasks_processedevent WHERE event_id = ?", hung.id) == []
        assert len(database.rows("SELECT * FROM event_tasks_processedevent WHERE event_id = ?", healthy.id)) == 1

        after = plat.send(PROBE_CREATED, {"n": 3})  # the worker still takes events
        plat.wait_calls("alpha", after.id, timeout=30)
        assert worker.running
        assert worker.log().count("Hard time limit") == 0  # Celery's own path (FAILURE + ack) never ran
    finally:
        plat.stop_all()
        database.close()
