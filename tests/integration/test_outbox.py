"""The transactional outbox against a real Redis that goes down and comes back."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from celery import Celery
from django.db import connection, transaction
from django.utils import timezone
from kombu import Connection

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.brokers.topology import declare, service_queue
from event_tasks.models import OutboxEvent
from event_tasks.send.publisher import Publisher
from event_tasks.send.relay import Relay
from event_tasks.store import outbox, sent
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
    wait_until(  # marked sent off the sender's path, in batches (store/sent.py)
        lambda: OutboxEvent.objects.get(event_id=event.id).sent_at is not None, 5, message="the row marked sent"
    )
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
    sent.flush()  # the marks of the on-commit publishes (else within a fraction of a second)
    assert Relay(publisher, retention=3600).prune() == 0
    assert Relay(publisher, retention=-1).prune() == 2
    assert not OutboxEvent.objects.filter(event_id=pending_sent.id).exists()


def test_published_rows_are_marked_sent_in_batches_off_the_senders_path(producer):
    publisher, client = producer
    updates: list[str] = []

    def count(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            updates.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        events = []
        for n in range(250):
            with transaction.atomic():
                events.append(publisher.send(PROBE_CREATED, {"n": n}))
    # one INSERT per transaction; the sender's own thread marked 200 rows with 2 UPDATEs at most
    # (one per 100, or per 0.2 s), not one per event; a daemon thread marks the rest soon after
    assert 1 <= len(updates) <= 250 // sent.BATCH + 1
    assert client.llen("events.alpha") == 250
    wait_until(
        lambda: OutboxEvent.objects.filter(sent_at__isnull=False).count() == 250, 5, message="every row marked sent"
    )
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {1}


def test_rows_published_but_never_marked_are_sent_again_by_the_relay(producer):
    """A sender that died between its publish and the batch that marks rows sent: the rows keep
    their claim until its lease runs out, then a relay publishes them again (at least once)."""
    publisher, client = producer
    with transaction.atomic():
        event = publisher.send(PROBE_CREATED, {"n": 8})
    assert queued(client, "events.alpha") == [f"{event.id}:alpha"]
    assert sent.marks(outbox.mark_sent_ids).take() == {"default": [event.id]}  # the process "died"
    relay = Relay(publisher, grace=0)
    assert relay.drain() == 0  # the sender's claim still holds: the relay leaves the row alone
    OutboxEvent.objects.update(claimed_until=timezone.now() - dt.timedelta(seconds=1))  # the lease ran out
    assert relay.drain() == 1
    assert queued(client, "events.alpha") == [f"{event.id}:alpha"] * 2  # a duplicate consumers drop by id
    row = OutboxEvent.objects.get()
    assert row.sent_at is not None and row.claimed_by.startswith("relay:")


def test_durability_check_accepts_aof_and_refuses_a_forgetful_redis(broker, redis_server):
    from event_tasks.brokers.check import check_redis
    from event_tasks.errors import ConfigurationError

    assert check_redis(broker.url, require=True) == []
    with pytest.raises(ConfigurationError, match="appendonly is 'no'"):
        check_redis(redis_server.url, require=True)
    assert check_redis(redis_server.url, require=False)  # a warning, not an error, in development
