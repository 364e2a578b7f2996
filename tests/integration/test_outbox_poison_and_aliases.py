"""Outbox corners of issue 9.6 on real brokers: a row that always fails does not block the relay
(it is deferred with backoff, reported, retried), and ``send_event`` inside
``transaction.atomic(using="other")`` waits for that transaction (rollback: nothing; commit: once)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from celery import Celery
from django.db import transaction
from django.utils import timezone
from kombu import Connection

from event_tasks import catalog, conf
from event_tasks.app import install
from event_tasks.brokers.message import encode_body
from event_tasks.brokers.topology import declare, service_queue
from event_tasks.models import OutboxEvent
from event_tasks.send.publisher import Publisher
from event_tasks.send.relay import Relay
from event_tasks.testing import wait_until
from tests.brokers import RedisServer, rabbitmq_vhost
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.test_outbox_claims import SERVICES, drain, events

pytestmark = [pytest.mark.timeout(120)]
# A type whose routing key is longer than AMQP's 255 bytes: RabbitMQ's client refuses to publish it.
OVERLONG_TYPE = "org.openedx.learning." + "é" * 200 + ".v1"


@pytest.fixture(scope="module")
def own_redis():
    server = RedisServer(appendonly=True).start()  # AOF: the bindings survive the restart below
    yield server
    server.cleanup()


def publisher_for(url: str, **overrides) -> Publisher:
    catalog.load("tests.fabric.schemas")
    with Connection(url) as conn:
        declare(conn, [service_queue(s, [PROBE_CREATED]) for s in SERVICES])
    app = Celery("outbox-poison", broker=url, set_as_current=False)
    install(app)
    return Publisher(app, "prober", dataclasses.replace(conf.settings(), **overrides))


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request):
    if request.param == "redis":
        server = request.getfixturevalue("own_redis")
        server.client().flushdb()
        yield "redis", server.url
    else:
        with rabbitmq_vhost() as url:
            yield "rabbitmq", url


def outbox_row(event_id: str, event_type: str, body: str, argsrepr: str) -> OutboxEvent:
    return OutboxEvent(event_id=event_id, event_type=event_type, body=body, argsrepr=argsrepr)


@pytest.mark.django_db(transaction=True)
def test_a_row_that_always_fails_is_deferred_reported_and_retried_while_the_others_go_out(broker):
    kind, url = broker
    # a generous confirm timeout: on a loaded machine a confirm can take seconds (a timeout is "broker down")
    publisher = publisher_for(url, outbox_backoff=0.5, outbox_backoff_max=1.0, publish_timeout=3.0)
    good = events(4)
    corrupt_id = "corrupt-row"
    rows = [
        outbox_row(*good[0]),
        outbox_row(*good[1]),
        outbox_row(corrupt_id, PROBE_CREATED, "not json {", ""),
    ]  # refused by the relay's check
    poison = [corrupt_id]
    if kind == "rabbitmq":  # refused by the broker's client
        envelope = {
            "id": "overlong-type",
            "type": OVERLONG_TYPE,
            "source": "prober",
            "time": "2026-11-30T07:00:00.000000Z",
            "specversion": "1.0",
            "key": None,
        }
        rows.append(outbox_row("overlong-type", OVERLONG_TYPE, *encode_body(envelope, {"n": 1})))
        poison.append("overlong-type")
    rows += [outbox_row(*good[2]), outbox_row(*good[3])]
    OutboxEvent.objects.bulk_create(rows)

    relay = Relay(publisher, grace=0, batch=3)
    assert relay.drain() == 4  # the good rows went out, past the poison ones
    assert relay.drain() == 0  # the poison ones wait for their backoff
    assert OutboxEvent.objects.get(event_id=corrupt_id).attempts == 1
    arrived = drain(url, "events.alpha")
    assert arrived == {event_id: 1 for event_id, *_ in good}
    for event_id in poison:
        row = OutboxEvent.objects.get(event_id=event_id)
        assert row.sent_at is None and row.attempts == 1 and row.next_attempt_at > timezone.now()
        assert row.last_error and not row.claimed_until
    assert "not JSON" in OutboxEvent.objects.get(event_id=corrupt_id).last_error
    summary = relay.summary(4)  # what `events relay --once` prints
    assert f"published 4 outbox event(s); {len(poison)} failing" in summary
    assert all(event_id in summary for event_id in poison)
    assert [d.row.event_id for d in relay.deferred] == poison

    def retried_twice() -> bool:
        relay.drain()
        return OutboxEvent.objects.get(event_id=corrupt_id).attempts >= 3

    wait_until(retried_twice, 15, 0.1, message="the poison row to be retried after its backoff")
    row = OutboxEvent.objects.get(event_id=corrupt_id)
    assert row.next_attempt_at - timezone.now() <= dt.timedelta(seconds=1.01)  # capped backoff

    fixed = events(1)[0]  # an operator repairs the row: next retry sends it
    body = json.loads(fixed[2])
    body[0][0]["id"] = corrupt_id
    OutboxEvent.objects.filter(event_id=corrupt_id).update(body=json.dumps(body))
    wait_until(
        lambda: relay.drain() or OutboxEvent.objects.get(event_id=corrupt_id).sent_at is not None,
        15,
        0.1,
        message="the repaired row to go out on its next retry",
    )
    assert drain(url, "events.alpha") == {corrupt_id: 1}


@pytest.fixture
def producer(own_redis):
    own_redis.client().flushdb()
    return publisher_for(own_redis.url), own_redis


def queued(server: RedisServer, queue: str) -> list[str]:
    return [json.loads(m)["headers"]["root_id"] for m in server.client().lrange(queue, 0, -1)]


both_databases = pytest.mark.django_db(transaction=True, databases=["default", "other"])


@both_databases
def test_rollback_on_another_database_publishes_nothing(producer):
    publisher, server = producer
    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        publisher.send(PROBE_CREATED, {"n": 1})
        raise RuntimeError("the business transaction on 'other' fails")
    assert queued(server, "events.alpha") == [] and queued(server, "events.beta") == []
    assert OutboxEvent.objects.using("default").count() == 0 and OutboxEvent.objects.using("other").count() == 0


@both_databases
def test_commit_on_another_database_publishes_once_after_the_commit(producer):
    publisher, server = producer
    with transaction.atomic(using="other"):
        event = publisher.send(PROBE_CREATED, {"n": 2})
        many = publisher.send_many([(PROBE_CREATED, {"n": 3}), (PROBE_CREATED, {"n": 4})])
        assert queued(server, "events.alpha") == []  # not before the commit
    expected = sorted([event.id, *(e.id for e in many)])
    for service in SERVICES:
        assert sorted(queued(server, f"events.{service}")) == expected
    assert publisher.stats["after_commit"] == 3


@both_databases
def test_broker_down_when_another_database_commits_leaves_the_event_to_the_relay(producer):
    publisher, server = producer
    server.stop()
    try:
        with transaction.atomic(using="other"):
            event = publisher.send(PROBE_CREATED, {"n": 5})
        row = OutboxEvent.objects.using("default").get(event_id=event.id)
        assert row.sent_at is None and row.attempts == 1 and row.last_error
    finally:
        server.start()
    assert Relay(publisher, grace=0).drain() == 1
    assert queued(server, "events.alpha") == [event.id]


@both_databases
def test_with_event_tasks_database_the_row_joins_that_databases_transaction(own_redis, settings):
    settings.EVENT_TASKS_DATABASE = "other"
    conf.settings.cache_clear()
    own_redis.client().flushdb()
    publisher = publisher_for(own_redis.url)
    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        publisher.send(PROBE_CREATED, {"n": 6})
        raise RuntimeError("rolled back")
    assert OutboxEvent.objects.using("other").count() == 0
    with transaction.atomic(using="other"):
        event = publisher.send(PROBE_CREATED, {"n": 7})
        assert OutboxEvent.objects.using("other").get(event_id=event.id).sent_at is None  # in the transaction
    wait_until(
        lambda: OutboxEvent.objects.using("other").get(event_id=event.id).sent_at is not None,
        5,
        message="the row marked sent",
    )
    assert not OutboxEvent.objects.using("default").exists()
    assert queued(own_redis, "events.alpha") == [event.id]
    assert publisher.stats["outboxed"] == 2 and publisher.stats["after_commit"] == 0  # both sends took the outbox
