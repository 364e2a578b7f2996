"""Failures stay in the failing service: retries, dead letters, unreadable messages, bad sends."""

from __future__ import annotations

import pickle
import uuid

import pytest
from kombu import Connection, Exchange, Producer

from event_tasks.brokers.message import encode_body, headers
from event_tasks.envelope import SPECVERSION
from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def running(platform):
    platform.start("alpha", "beta", "gamma")
    return platform


def letters(platform, service, **match):
    return [r for r in platform.dead_letters(service) if all(r[k] == v for k, v in match.items())]


def test_retry_runs_only_in_the_failing_service(running):
    event = running.send(PROBE_CREATED, {"n": 1}, key="fail:alpha:2")
    running.wait_calls("alpha", event.id, 3)
    wait_until(
        lambda: [r["status"] for r in running.results("alpha", event.id)] == ["SUCCESS"],
        30,
        message="alpha's final SUCCESS row",
    )
    # Any stray retry copy was published before this marker, so it is processed before it.
    marker = running.send(PROBE_CREATED, {"n": 2})
    for service in ("alpha", "beta", "gamma"):
        running.wait_calls(service, marker.id)
    assert [running.calls(s, event.id) for s in ("alpha", "beta", "gamma")] == [3, 1, 1]
    assert running.queue_depths() == {"events.alpha": 0, "events.beta": 0, "events.gamma": 0}
    assert not running.dead_letters("alpha")
    with Connection(running.broker_url) as conn, conn.channel() as ch:  # nothing fell into "celery"
        try:
            assert ch.queue_declare("celery", passive=True)[1] == 0
        except conn.channel_errors:
            pass  # RabbitMQ: the queue does not even exist


def test_last_retry_goes_to_the_dead_letters(running):
    event = running.send(PROBE_CREATED, {"n": 3}, key="fail:alpha:always")
    running.wait_calls("beta", event.id)
    rows = wait_until(lambda: letters(running, "alpha", event_id=event.id), 60, message="alpha's dead letter")
    (row,) = rows
    assert row["reason"] == "max_retries"
    assert row["attempts"] == 4  # EVENT_TASKS_MAX_RETRIES=3 in test settings
    assert "RuntimeError: alpha fails attempt 4 on purpose" in row["detail"]
    assert "Traceback" in row["traceback"] and row["event_type"] == PROBE_CREATED
    assert running.calls("alpha", event.id) == 4
    assert running.calls("beta", event.id) == 1 and running.calls("gamma", event.id) == 1
    assert not letters(running, "beta") and not letters(running, "gamma")


def _publish_raw(url, queue, body, *, content_type="application/json", hdrs=None):
    with Connection(url) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(""),
            routing_key=queue,
            content_type=content_type,
            content_encoding="utf-8" if content_type.startswith("application/json") else "binary",
            headers=hdrs or {},
            delivery_mode=2,
        )


def _task_headers(event_type, event_id, service="alpha"):
    return headers(event_type, event_id, f"{event_id}:{service}", "")


def _envelope(event_id, event_type=PROBE_CREATED, **changes):
    env = {
        "id": event_id,
        "type": event_type,
        "source": "prober",
        "time": "2026-01-01T00:00:00Z",
        "specversion": SPECVERSION,
        "key": None,
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v is not ...}


BAD_MESSAGES = {
    "undecodable": lambda eid: dict(body=b"\x80\x81 not json {", hdrs=_task_headers(PROBE_CREATED, eid)),
    "content_disallowed": lambda eid: dict(
        body=pickle.dumps(("harmless", eid)),
        content_type="application/x-python-serialize",
        hdrs=_task_headers(PROBE_CREATED, eid),
    ),
    "unknown_type": lambda eid: dict(
        body=encode_body(_envelope(eid, "org.openedx.learning.nope.v1"), {"n": 1})[0],
        hdrs=_task_headers("org.openedx.learning.nope.v1", eid),
    ),
    "not_a_task": lambda eid: dict(body='{"hello": "world"}', hdrs={"id": eid}),
    "invalid_payload": lambda eid: dict(
        body=encode_body(_envelope(eid), {"n": "seven", "extra": 1})[0], hdrs=_task_headers(PROBE_CREATED, eid)
    ),
    "invalid_envelope": lambda eid: dict(
        body=encode_body(_envelope(eid, source=..., time=...), {"n": 1})[0], hdrs=_task_headers(PROBE_CREATED, eid)
    ),
    "unsupported_version": lambda eid: dict(
        body=encode_body(_envelope(eid, specversion="9.9"), {"n": 1})[0], hdrs=_task_headers(PROBE_CREATED, eid)
    ),
    "invalid_arguments": lambda eid: dict(body="[[1, 2, 3], {}, {}]", hdrs=_task_headers(PROBE_CREATED, eid)),
    "too_large": lambda eid: dict(
        body=encode_body(_envelope(eid), {"n": 1, "note": "x" * 300_000})[0], hdrs=_task_headers(PROBE_CREATED, eid)
    ),
}


@pytest.mark.parametrize("reason", sorted(BAD_MESSAGES))
def test_unreadable_message_is_dead_lettered_and_the_worker_goes_on(running, reason):
    event_id = str(uuid.uuid4())
    _publish_raw(running.broker_url, "events.alpha", **BAD_MESSAGES[reason](event_id))
    rows = wait_until(
        lambda: letters(running, "alpha", reason=reason, event_id=event_id),
        30,
        message=lambda: f"a {reason} dead letter; have {[dict(r) for r in running.dead_letters('alpha')][-3:]}",
    )
    assert rows[0]["detail"] and rows[0]["raw"]
    assert running.calls("alpha", event_id) == 0
    after = running.send(PROBE_CREATED, {"n": 9})
    running.wait_calls("alpha", after.id)
    assert running.worker("alpha").running


def test_redis_queue_item_that_is_not_a_kombu_message_is_dead_lettered(fresh_redis_url, workdir, probe_template_db):
    """Redis only: anything LPUSHed into a service's queue list (not JSON, JSON without a delivery
    tag) is a dead letter with its text, among good messages; the worker goes on."""
    import redis

    from tests.integration.fabric import Platform

    plat = Platform(fresh_redis_url, workdir / "failures-raw-redis", template_db=probe_template_db)
    try:
        plat.worker("alpha").start()
        client = redis.Redis.from_url(fresh_redis_url)
        before = plat.send(PROBE_CREATED, {"n": 1})
        client.lpush("events.alpha", b"this is not json", b'{"body": "no properties"}')
        after = plat.send(PROBE_CREATED, {"n": 2})
        for event in (before, after):
            plat.wait_calls("alpha", event.id)
        rows = wait_until(
            lambda: (
                [r for r in plat.dead_letters("alpha") if r["reason"] == "undecodable"]
                if len(plat.dead_letters("alpha")) >= 2
                else None
            ),
            30,
            message=lambda: f"two dead letters; log: {plat.worker('alpha').output()[-2000:]}",
        )
        assert sorted("this is not json" in r["raw"] or "no properties" in r["raw"] for r in rows) == [True, True]
        wait_until(lambda: client.llen("events.alpha\x06\x16inflight") == 0, 10, message="in-flight emptied")
        assert plat.worker("alpha").running
    finally:
        plat.stop_all()
