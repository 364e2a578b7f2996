"""The transactional outbox against a real Redis that goes down and comes back."""

from __future__ import annotations

import json
import threading

import pytest
from celery import Celery
from django.db import transaction
from kombu import Connection

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.brokers.topology import declare, service_queue
from event_tasks.models import OutboxEvent
from event_tasks.send.publisher import Publisher
from event_tasks.send.relay import Relay
from event_tasks.testing import wait_until
from tests.brokers import RedisServer
from tests.fabric.schemas.probe import PROBE_CREATED

pytestmark = [pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def broker():
    server = RedisServer(appendonly=True).start()  # AOF: queues and bindings survive restarts
    catalog.load("tests.fabric.schemas")
    with Connection(server.url) as conn:
        declare(conn, [service_queue(s, [PROBE_CREATED]) for s in ("alpha", "beta")])
    yield server
    server.cleanup()


@pytest.fixture
def producer(broker):
    app = Celery("outbox-tests", broker=broker.url, set_as_current=False)
    install(app)
    client = broker.client()
    client.delete("events.alpha", "events.beta")
    return Publisher(app, "prober"), client


def queued(client, queue):
    return [json.loads(m)["headers"]["id"] for m in client.lrange(queue, 0, -1)]


def test_rolled_back_event_is_never_published(producer):
    publisher, client = producer
    with pytest.raises(RuntimeError), transaction.atomic():
        publisher.send(PROBE_CREATED, {"n": 1})
        raise RuntimeError("the business transaction fails")
    assert OutboxEvent.objects.count() == 0
    assert client.llen("events.alpha") == 0


def test_committed_event_leaves_after_commit_with_its_id(producer):
    publisher, client = producer
    with transaction.atomic():
        event = publisher.send(PROBE_CREATED, {"n": 2})
        assert client.llen("events.alpha") == 0  # not before the commit
        assert OutboxEvent.objects.get().sent_at is None
    assert queued(client, "events.alpha") == [f"{event.id}:alpha"]
    assert queued(client, "events.beta") == [f"{event.id}:beta"]
    assert OutboxEvent.objects.get(event_id=event.id).sent_at is not None
    assert publisher.stats["outboxed"] == 1


def test_outside_a_transaction_the_direct_path_publishes_at_once(producer):
    publisher, client = producer
    event = publisher.send(PROBE_CREATED, {"n": 3})
    assert queued(client, "events.alpha") == [f"{event.id}:alpha"]
    assert OutboxEvent.objects.count() == 0


def test_event_committed_while_broker_is_down_is_published_when_it_is_back(producer, broker):
    publisher, client = producer
    broker.stop()
    with transaction.atomic():
        first = publisher.send(PROBE_CREATED, {"n": 4})
        second = publisher.send(PROBE_CREATED, {"n": 5})
    assert list(OutboxEvent.objects.filter(sent_at__isnull=True).values_list("event_id", flat=True)) == [
        first.id,
        second.id,
    ]
    assert OutboxEvent.objects.get(event_id=first.id).last_error  # the on-commit publish failed

    relay = Relay(publisher, grace=0, idle=0.05, max_backoff=0.5)
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: relay.failures >= 2, 30, message="the relay to retry while the broker is down")
        broker.start()  # same port, same AOF dir
        wait_until(
            lambda: not OutboxEvent.objects.filter(sent_at__isnull=True).exists(),
            30,
            message="the relay to publish the pending rows",
        )
    finally:
        relay.stop.set()
        thread.join(10)
    client = broker.client()
    assert queued(client, "events.alpha")[::-1] == [f"{first.id}:alpha", f"{second.id}:alpha"]  # in order
    assert queued(client, "events.beta")[::-1] == [f"{first.id}:beta", f"{second.id}:beta"]


def test_sent_rows_are_pruned_after_the_retention(producer):
    publisher, _ = producer
    with transaction.atomic():
        publisher.send(PROBE_CREATED, {"n": 6})
    with transaction.atomic():
        pending_sent = publisher.send(PROBE_CREATED, {"n": 7})
    assert Relay(publisher, retention=3600).prune() == 0
    assert Relay(publisher, retention=-1).prune() == 2
    assert not OutboxEvent.objects.filter(event_id=pending_sent.id).exists()


def test_durability_check_accepts_aof_and_refuses_a_forgetful_redis(broker, redis_server):
    from event_tasks.brokers.check import check_redis
    from event_tasks.errors import ConfigurationError

    assert check_redis(broker.url, require=True) == []
    with pytest.raises(ConfigurationError, match="appendonly is 'no'"):
        check_redis(redis_server.url, require=True)
    assert check_redis(redis_server.url, require=False)  # a warning, not an error, in development
