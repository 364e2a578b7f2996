"""Crash safety on real brokers: killed workers, killed countdown retries, poison messages, replay."""

from __future__ import annotations

import json
import uuid

import pytest

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import CATALOG_PROBE, PROBE_CREATED

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def plat(crash_platform):
    crash_platform.start("alpha", "beta", "gamma")
    return crash_platform


def restart(plat, service):
    worker = plat.worker(service)
    worker.kill()
    worker.start()


def settle(plat, *services):
    """A marker through each queue: what was queued before it has been handled."""
    marker = plat.send(PROBE_CREATED, {"n": 999})
    for s in services:
        plat.wait_calls(s, marker.id, timeout=60)


def test_worker_killed_mid_handler_gets_the_event_again_alone(plat):
    event = plat.send(PROBE_CREATED, {"n": 1}, key="slow:alpha:2.5")
    plat.wait_calls("alpha", event.id)  # the handler has started (and sleeps)
    plat.wait_calls("beta", event.id)
    restart(plat, "alpha")  # SIGKILL mid-handler, then a fresh worker
    plat.wait_calls("alpha", event.id, 2, timeout=60)
    settle(plat, "alpha", "beta", "gamma")
    assert [plat.calls(s, event.id) for s in ("alpha", "beta", "gamma")] == [2, 1, 1]
    assert [r["status"] for r in plat.results("alpha", event.id)] == ["SUCCESS"]
    assert len(plat.processed("alpha", event.id)) == 1


def test_countdown_retry_held_by_a_killed_worker_is_not_lost(plat):
    event = plat.send(PROBE_CREATED, {"n": 2}, key="fail:alpha:1")
    plat.wait_calls("alpha", event.id)
    wait_until(
        lambda: [r["status"] for r in plat.results("alpha", event.id)] == ["RETRY"], 20, message="alpha's RETRY state"
    )
    restart(plat, "alpha")  # the retry (countdown) was waiting in that worker
    plat.wait_calls("alpha", event.id, 2, timeout=60)
    wait_until(
        lambda: [r["status"] for r in plat.results("alpha", event.id)] == ["SUCCESS"], 30, message="alpha's SUCCESS"
    )
    settle(plat, "alpha", "beta")
    assert plat.calls("alpha", event.id) == 2 and plat.calls("beta", event.id) == 1


def test_poison_message_is_dead_lettered_after_repeated_worker_losses(plat):
    # delta runs a prefork pool (a child that dies is noticed by its parent, which requeues) with
    # production-like limits: the short crash-test time limit would race the worker-lost check.
    delta = plat.worker(
        "delta", pool="prefork", env={"EVENT_TASKS_VISIBILITY_TIMEOUT": "120", "EVENT_TASKS_HANDLER_TIME_LIMIT": "60"}
    )
    delta.start()
    try:
        event = plat.send(CATALOG_PROBE, {"n": 3}, key="exit:delta:always")
        rows = wait_until(
            lambda: [r for r in plat.dead_letters("delta") if r["event_id"] == event.id],
            90,
            message=lambda: f"a worker_lost dead letter; log: {delta.output()[-3000:]}",
        )
        assert rows[0]["reason"] == "worker_lost", (rows[0]["detail"], rows[0]["traceback"][-1500:])
        assert "worker lost 3 times" in rows[0]["detail"]
        assert plat.calls("delta", event.id) == 3  # first delivery + 2 redeliveries, then refused
        assert delta.running
        after = plat.send(CATALOG_PROBE, {"n": 4})
        plat.wait_calls("delta", after.id)
    finally:
        delta.stop()


def test_dead_letter_replay_reaches_only_its_service_with_the_original_id(plat):
    block = plat.dir / "blocked-alpha"
    block.write_text("")
    event = plat.send(PROBE_CREATED, {"n": 4}, key="blocked:alpha:x")
    rows = wait_until(
        lambda: [r for r in plat.dead_letters("alpha") if r["event_id"] == event.id], 60, message="alpha's dead letter"
    )
    letter_id = rows[0]["id"]
    assert rows[0]["reason"] == "max_retries" and plat.calls("alpha", event.id) == 4
    listing = plat.manage("alpha", "events", "deadletters", "list", "--reason", "max_retries", "--type", PROBE_CREATED)
    assert f"#{letter_id} " in listing and event.id in listing
    shown = json.loads(plat.manage("alpha", "events", "deadletters", "show", str(letter_id)))
    assert shown["event_id"] == event.id and "RuntimeError: alpha is blocked" in shown["traceback"]

    block.unlink()  # the bug is fixed; replay
    assert "to events.alpha" in plat.manage("alpha", "events", "deadletters", "replay", str(letter_id))
    plat.wait_calls("alpha", event.id, 5)
    wait_until(lambda: len(plat.processed("alpha", event.id)) == 1, 30, message="alpha's mark after replay")
    assert plat.results("alpha", event.id) == []  # the replayed delivery started afresh and succeeded at once

    plat.manage("alpha", "events", "deadletters", "replay", str(letter_id))  # again: a duplicate
    wait_until(lambda: plat.processed("alpha", event.id)[0]["duplicates"] == 1, 30, message="duplicate counted")
    settle(plat, "alpha", "beta", "gamma")
    assert [plat.calls(s, event.id) for s in ("alpha", "beta", "gamma")] == [5, 1, 1]

    assert "discarded 1" in plat.manage("alpha", "events", "deadletters", "discard", str(letter_id))
    assert not [r for r in plat.dead_letters("alpha") if r["id"] == letter_id]


def test_unreadable_dead_letter_is_not_replayable(plat):
    from kombu import Connection, Exchange, Producer

    with Connection(plat.broker_url) as conn:
        Producer(conn.channel()).publish(
            b"\x80 not json",
            exchange=Exchange(""),
            routing_key="events.alpha",
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": PROBE_CREATED, "id": f"{uuid.uuid4()}:alpha"},
        )
    rows = wait_until(
        lambda: [r for r in plat.dead_letters("alpha") if r["reason"] == "undecodable"],
        30,
        message="undecodable dead letter",
    )
    with pytest.raises(RuntimeError, match="holds no readable event"):
        plat.manage("alpha", "events", "deadletters", "replay", str(rows[-1]["id"]))


def test_long_handler_is_not_given_to_another_consumer_while_it_runs(plat):
    # The handler sleeps 8 s, twice the Redis visibility timeout (4 s). Two pool processes are free
    # to take a second copy; the live worker renews its lease, so none is handed out.
    epsilon = plat.worker("epsilon", pool="prefork", concurrency=2, env={"EVENT_TASKS_HANDLER_TIME_LIMIT": "60"})
    epsilon.start()
    try:
        event = plat.send(PROBE_CREATED, {"n": 5}, key="slow:epsilon:8")
        wait_until(lambda: len(plat.processed("epsilon", event.id)) == 1, 60, message="epsilon's mark")
        settle(plat, "epsilon")
        assert epsilon.log().count(f"[{event.id}:epsilon] received") == 1  # handed out once
        assert plat.calls("epsilon", event.id) == 1
        assert [r["duplicates"] for r in plat.processed("epsilon", event.id)] == [0]
    finally:
        epsilon.stop()


def test_redis_message_taken_by_a_consumer_that_died_is_put_back(fresh_redis_url, workdir, probe_template_db):
    """Redis: a message moved to the in-flight list whose consumer died before tracking it."""
    import redis

    from event_tasks.brokers.message import QUEUE_SLOT, SERVICE_SLOT, RedisMessageTemplate, encode_body
    from event_tasks.brokers.redis.transport import inflight_key
    from tests.conftest import CRASH_ENV
    from tests.integration.fabric import Platform

    plat = Platform(fresh_redis_url, workdir / "inflight", env=CRASH_ENV, template_db=probe_template_db)
    try:
        plat.start("alpha")
        client = redis.Redis.from_url(fresh_redis_url)
        client.config_resetstat()
        live = plat.send(PROBE_CREATED, {"n": 1})
        plat.wait_calls("alpha", live.id)
        # A BLMOVE is counted when it returns (a message, or its 1 s timeout), not when it blocks.
        wait_until(
            lambda: int(client.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0)) >= 1,
            10,
            message="a BLMOVE on the event queue",
        )
        assert int(client.info("commandstats").get("cmdstat_brpop", {}).get("calls", 0)) == 0
        assert client.llen(inflight_key("events.alpha")) == 0  # tracked and out of in-flight

        orphan_id = str(uuid.uuid4())
        envelope = {
            "id": orphan_id,
            "type": PROBE_CREATED,
            "source": "prober",
            "time": "2026-01-01T00:00:00Z",
            "specversion": "1.0",
            "key": None,
        }
        body, argsrepr = encode_body(envelope, {"n": 2})
        message = RedisMessageTemplate().render(PROBE_CREATED, orphan_id, body, argsrepr)
        client.lpush(
            inflight_key("events.alpha"), message.replace(SERVICE_SLOT, "alpha").replace(QUEUE_SLOT, "events.alpha")
        )
        plat.wait_calls("alpha", orphan_id, timeout=30)  # after the grace (the visibility timeout here)
        assert client.llen(inflight_key("events.alpha")) == 0
        assert plat.calls("alpha", orphan_id) == 1
    finally:
        plat.stop_all()
