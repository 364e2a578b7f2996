"""``events status`` against real brokers, real workers and the services' real databases."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT

pytestmark = pytest.mark.timeout(240)


def tooling(platform, *args: str, databases: tuple[str, ...] = (), check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``manage.py`` as an operator's tooling process (no service), reading ``databases``' databases."""
    full = {**os.environ, **platform.worker_env("tooling"), **(env or {})}
    full.pop("EVENT_TASKS_SERVICE")
    full["DATABASE_URL"] = f"sqlite:///{platform.dir / 'tooling.sqlite3'}"
    for service in databases:
        platform.worker(service)   # its database file, migrated, even if its worker never starts
        full[f"{service.upper()}_DATABASE_URL"] = f"sqlite:///{platform.db_path(service)}"
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True,
                         timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} exited {out.returncode}: {out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def running(platform):
    platform.start("alpha")
    tooling(platform, "events", "declare", "--service", "beta")   # beta's queue, no worker: events wait there
    return platform


def test_status_shows_depth_workers_dead_letters_and_outbox(running):
    failing = running.send(PROBE_CREATED, {"n": 1}, key="fail:alpha:always")
    events = [running.send(PROBE_CREATED, {"n": i}) for i in range(2, 5)]
    for event in events:
        running.wait_calls("alpha", event.id)
    wait_until(lambda: running.dead_letters("alpha"), 60, message="alpha's dead letter")
    running.worker("beta")
    with running.query_connection("beta") as con:   # a pending outbox row of beta's, 5 s old
        con.execute("INSERT INTO event_tasks_outboxevent (event_id, event_type, body, argsrepr, created_at, attempts,"
                    " last_error) VALUES ('pending-1', ?, '[]', '', datetime('now', '-5 seconds'), 0, '')",
                    (PROBE_CREATED,))
    out = tooling(running, "events", "status", "--json", "--service", "alpha", "--service", "beta",
                  databases=("alpha", "beta"))
    data = json.loads(out.stdout)
    rows = {row["service"]: row for row in data["services"]}
    alpha, beta = rows["alpha"], rows["beta"]
    assert data["broker"] == ("redis" if running.broker_url.startswith("redis") else "rabbitmq")
    assert beta["exists"] and beta["depth"] == 4 and beta["workers"] == []
    assert alpha["exists"] and alpha["depth"] == 0 and len(alpha["workers"]) == 1
    assert alpha["active"] == 0 and alpha["held"] == 0
    assert alpha["dead_letters"] == {"total": 1, "by_reason": {"max_retries": 1}}
    assert beta["dead_letters"] == {"total": 0, "by_reason": {}}
    assert beta["outbox"]["pending"] == 1 and beta["outbox"]["oldest_age"] >= 5
    assert alpha["outbox"] == {"pending": 0, "oldest_age": None}
    if data["broker"] == "redis":
        assert beta["oldest_age"] is not None and beta["oldest_age"] >= 0 and beta["unacked"] == 0
    else:
        assert beta["consumers"] == 0 and alpha["consumers"] == 1
    (worker,) = alpha["workers"]
    assert data["workers"][worker]["service"] == "alpha"
    text = tooling(running, "events", "status", "--service", "alpha", "--service", "beta",
                   databases=("alpha", "beta")).stdout
    assert "max_retries=1" in text and "events.beta" in text and worker in text
    assert failing.id  # the failing event is the dead letter counted above


def test_status_without_a_database_says_so(running):
    out = tooling(running, "events", "status", "--json", "--service", "beta", "--no-workers")
    (beta,) = json.loads(out.stdout)["services"]
    assert beta["database"] is None and beta["dead_letters"] is None and beta["outbox"] is None
    assert beta["workers"] == [] and beta["active"] is None
