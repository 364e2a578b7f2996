"""Quorum queues (``EVENT_TASKS_QUEUE_TYPE = "quorum"``) on a real RabbitMQ, in a vhost of their own.

What changes with the queue type: the queues the fabric declares and their arguments, retries
that wait in RabbitMQ's delay levels instead of the worker, the parked queue behind the delivery
limit, and the publish that reaches no queue. The node here is the machine's (a quorum queue
works on one node); the cluster and its node kills are ``tests/faults/test_cluster_faults.py``.
"""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Producer

from event_tasks.brokers.message import encode_body, headers
from event_tasks.envelope import SPECVERSION
from event_tasks.testing import wait_until
from tests.brokers import rabbitmq_vhost, rabbitmqctl
from tests.fabric.schemas.probe import CATALOG_PROBE, PROBE_CREATED

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]  # `make test-cluster` (CI runs it after `make test`)
QUORUM_ENV = {"EVENT_TASKS_QUEUE_TYPE": "quorum", "EVENT_TASKS_QUORUM_DELIVERY_LIMIT": "3"}


@pytest.fixture(scope="module")
def running(workdir, probe_template_db):
    from tests.integration.fabric import Platform

    with rabbitmq_vhost() as url:
        plat = Platform(url, workdir / "quorum", env=QUORUM_ENV, template_db=probe_template_db)
        plat.start("alpha", "beta", "gamma")
        yield plat
        plat.stop_all()


def queues(url: str) -> dict[str, tuple[str, str]]:
    """name -> (type, arguments) of every queue of the vhost."""
    vhost = url.rsplit("/", 1)[1]
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "type", "arguments", "--quiet", "--no-table-headers")
    rows = {}
    for line in out.splitlines():
        name, kind, *rest = line.split("\t") if "\t" in line else line.split(None, 2)
        rows[name] = (kind.strip(), " ".join(rest))
    return rows


def test_every_queue_of_the_fabric_is_a_quorum_queue_with_a_delivery_limit(running):
    found = queues(running.broker_url)
    for service in ("alpha", "beta", "gamma"):
        kind, arguments = found[f"events.{service}"]
        assert kind == "quorum", found
        assert "x-delivery-limit" in arguments and "3" in arguments, arguments
        assert f"events.{service}.parked" in arguments and "at-least-once" in arguments, arguments
        assert found[f"events.{service}.parked"][0] == "quorum"
    delay_levels = [name for name in found if name.startswith("celery_delayed_")]
    assert len(delay_levels) == 28 and {found[n][0] for n in delay_levels} == {"quorum"}
    # What routes into alpha's queue: its subscriptions on `events`, its retry exchange, and its own key on the delay
    # levels' last exchange; nothing joins `events` to the delay levels (a retry would reach every
    # subscriber of the type).
    vhost = running.broker_url.rsplit("/", 1)[1]
    out = rabbitmqctl(
        "list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key", "--quiet", "--no-table-headers"
    )
    rows = [tuple(line.split("\t")) for line in out.splitlines() if line.strip()]
    into_alpha = sorted((src, key) for src, dest, key in rows if dest == "events.alpha")
    assert into_alpha == sorted(
        [("", "events.alpha"), ("events", PROBE_CREATED), ("events.alpha.retry", "events.alpha")]
        + [("celery_delayed_delivery", "*." * 28 + "events.alpha")]
    ), into_alpha  # the retry exchange of its own (decision 0017): sent-back copies and replays come that way
    assert [r for r in rows if r[1] == "events"] == []


def test_a_retry_waits_in_the_broker_and_comes_back_to_the_failing_service_only(running):
    event = running.send(PROBE_CREATED, {"n": 1}, key="fail:alpha:2")
    running.wait_calls("alpha", event.id, 3, timeout=60)
    marker = running.send(PROBE_CREATED, {"n": 2})
    for service in ("alpha", "beta", "gamma"):
        running.wait_calls(service, marker.id)
    assert [running.calls(s, event.id) for s in ("alpha", "beta", "gamma")] == [3, 1, 1]
    assert not running.dead_letters("alpha")
    log = running.worker("alpha").output()
    assert "(held by RabbitMQ's delay levels)" in log
    assert [line for line in log.splitlines() if "ERROR" in line or "CRITICAL" in line] == []
    found = queues(running.broker_url)
    assert "celery" not in found  # nothing went to the host's default queue


def test_the_last_retry_is_a_dead_letter(running):
    event = running.send(PROBE_CREATED, {"n": 3}, key="fail:alpha:always")
    rows = wait_until(
        lambda: [r for r in running.dead_letters("alpha") if r["event_id"] == event.id], 90, message="a dead letter"
    )
    assert rows[0]["reason"] == "max_retries"
    assert running.calls("alpha", event.id) == 4


def test_a_message_handed_out_past_the_delivery_limit_is_a_delivery_limit_dead_letter(running):
    """An event alpha has no handler for is held and put back (a deploy's hold-back); each put-back
    is a delivery RabbitMQ counts, and at the limit (3 here) it parks the message: a dead letter."""
    event_id = str(uuid.uuid4())
    envelope = {
        "id": event_id,
        "type": CATALOG_PROBE,
        "source": "prober",
        "time": "2026-01-01T00:00:00Z",
        "specversion": SPECVERSION,
        "key": None,
    }
    body, argsrepr = encode_body({**envelope, "time": _now()}, {"n": 1})
    with Connection(running.broker_url) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(""),
            routing_key="events.alpha",
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers(CATALOG_PROBE, event_id, f"{event_id}:alpha", argsrepr),
            delivery_mode=2,
        )
    rows = wait_until(
        lambda: [r for r in running.dead_letters("alpha") if r["event_id"] == event_id],
        60,
        message=lambda: f"a delivery_limit dead letter; have {[dict(r) for r in running.dead_letters('alpha')][-3:]}",
    )
    assert rows[0]["reason"] == "delivery_limit"
    assert "events.alpha" in rows[0]["detail"] and rows[0]["raw"]
    after = running.send(PROBE_CREATED, {"n": 4})
    running.wait_calls("alpha", after.id)


def test_a_send_no_queue_is_bound_for_counts_as_unrouted(running):
    producer = running.producer()
    before = producer.stats["unrouted"]
    running.send(CATALOG_PROBE, {"n": 5})  # only delta subscribes to it, and delta does not run here
    assert producer.stats["unrouted"] == before + 1
    running.send(PROBE_CREATED, {"n": 6})
    assert producer.stats["unrouted"] == before + 1


def _now() -> str:
    import datetime as dt

    from event_tasks.envelope import format_time

    return format_time(dt.datetime.now(dt.UTC))
