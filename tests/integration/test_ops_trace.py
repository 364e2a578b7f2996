"""``events trace``: where one event went, from the producer's outbox to each service's database."""

from __future__ import annotations

import json

import pytest

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED

pytestmark = pytest.mark.timeout(240)
DATABASES = ("prober", "alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def running(platform):
    platform.start("alpha")
    platform.tooling("events", "declare", "--service", "beta")  # bound, no worker: its copies wait
    platform.worker("prober")  # the producer's database (outbox)
    return platform


def trace(plat, event_id: str) -> dict:
    out = plat.tooling("events", "trace", event_id, "--json", databases=DATABASES)
    return json.loads(out.stdout)


def send_in_transaction(plat, key: str) -> str:
    code = (
        "from django.db import transaction\nfrom event_tasks import send_event\n"
        "with transaction.atomic():\n"
        f"    event = send_event({PROBE_CREATED!r}, {{'n': 7}}, key={key!r})\nprint(event.id)"
    )
    return plat.manage("prober", "shell", "-c", code).strip().splitlines()[-1]


def test_dead_lettered_waiting_and_unbound(running):
    event_id = send_in_transaction(running, "fail:alpha:always")
    wait_until(
        lambda: [r for r in running.dead_letters("alpha") if r["event_id"] == event_id],
        60,
        message="alpha's dead letter",
    )
    data = trace(running, event_id)
    assert data["type"] == PROBE_CREATED and data["source"] == "prober" and data["owner"] == "prober"
    (outbox,) = data["outbox"]
    assert outbox["service"] == "prober" and outbox["sent_at"] and outbox["attempts"] == 1
    rows = {r["service"]: r for r in data["services"]}
    assert set(rows) >= {"alpha", "beta", "gamma", "epsilon"}  # every service whose handlers take the type
    alpha = rows["alpha"]
    assert alpha["verdict"].startswith("dead-lettered (max_retries)")
    assert alpha["dead_letters"][0]["attempts"] == 4 and alpha["applied"] == []
    assert alpha["result"]["status"] == "FAILURE"
    if data["broker"] == "redis":
        assert rows["beta"]["queued"] == "waiting" and rows["beta"]["verdict"].startswith("waiting in its queue")
        assert rows["gamma"]["bound_now"] == [] and rows["gamma"]["verdict"].startswith("no binding")
    else:  # the shared RabbitMQ node has no management API: no binding list, no peeking
        assert rows["beta"]["queued"] is None and rows["beta"]["verdict"].startswith("no trace")
        assert any("management API" in n for n in data["notes"])
    assert rows["epsilon"]["database"] is None  # not configured here: the broker side is all trace knows
    assert rows["epsilon"]["verdict"].startswith(
        "no binding" if data["broker"] == "redis" else "its database is not readable here"
    )
    text = running.tooling("events", "trace", event_id, databases=DATABASES).stdout
    assert f"event {event_id}" in text and "outbox of prober" in text and "dead letter #" in text


def test_processed_with_a_duplicate_suppressed(running):
    producer = running.producer()
    event = producer.send(PROBE_CREATED, {"n": 8}, id="trace-duplicate-1")
    running.wait_calls("alpha", event.id)
    producer.send(PROBE_CREATED, {"n": 8}, id="trace-duplicate-1")  # the same event again: suppressed
    wait_until(
        lambda: [r["duplicates"] for r in running.processed("alpha", event.id)] == [1], 30, message="the duplicate mark"
    )  # the handler records before its transaction commits
    data = trace(running, event.id)
    alpha = {r["service"]: r for r in data["services"]}["alpha"]
    assert alpha["verdict"] == "processed, 1 duplicate(s) suppressed"
    (applied,) = alpha["applied"]
    assert applied["handler"].endswith("on_probe_created") and applied["duplicates_suppressed"] == 1
    # A delivery that succeeds at once stores no result row (its duplicate mark is the record). The
    # envelope then comes from beta's waiting copy on Redis; RabbitMQ cannot show it: no source.
    assert alpha["result"] is None and data["outbox"] == []
    assert data["source"] == ("prober" if data["broker"] == "redis" else None)


def test_unknown_event_exits_non_zero(running):
    out = running.tooling("events", "trace", "no-such-event", databases=DATABASES, check=False)
    assert out.returncode == 1 and "found nowhere" in out.stderr
