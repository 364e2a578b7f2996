"""``events status`` against real brokers, real workers and the services' real databases."""

from __future__ import annotations

import json

import pytest

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def running(platform):
    platform.start("alpha")
    platform.tooling("events", "declare", "--service", "beta")  # beta's queue, no worker: events wait there
    return platform


def test_status_shows_depth_workers_dead_letters_and_outbox(running):
    failing = running.send(PROBE_CREATED, {"n": 1}, key="fail:alpha:always")
    events = [running.send(PROBE_CREATED, {"n": i}) for i in range(2, 5)]
    for event in events:
        running.wait_calls("alpha", event.id)
    wait_until(lambda: running.dead_letters("alpha"), 60, message="alpha's dead letter")
    running.worker("beta")
    running.manage(
        "beta",
        "shell",
        "-c",  # a pending outbox row of beta's, 5 s old
        "import datetime as dt\nfrom django.utils import timezone\nfrom event_tasks.models import OutboxEvent\n"
        f"row = OutboxEvent.objects.create(event_id='pending-1', event_type={PROBE_CREATED!r}, body='[]')\n"
        "OutboxEvent.objects.filter(pk=row.pk).update(created_at=timezone.now() - dt.timedelta(seconds=5))",
    )
    out = running.tooling(
        "events", "status", "--json", "--service", "alpha", "--service", "beta", databases=("alpha", "beta")
    )
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
    text = running.tooling(
        "events", "status", "--service", "alpha", "--service", "beta", databases=("alpha", "beta")
    ).stdout
    assert "max_retries=1" in text and "events.beta" in text and worker in text
    assert failing.id  # the failing event is the dead letter counted above


def test_status_without_a_database_says_so(running):
    out = running.tooling("events", "status", "--json", "--service", "beta", "--no-workers")
    (beta,) = json.loads(out.stdout)["services"]
    assert beta["database"] is None and beta["dead_letters"] is None and beta["outbox"] is None
    assert beta["workers"] == [] and beta["active"] is None
