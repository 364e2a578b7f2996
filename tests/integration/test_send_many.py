"""``send_events``: a validated batch, one round trip on Redis, one wait for every confirm on
RabbitMQ, one outbox insert inside a transaction. Both brokers, real queues."""

from __future__ import annotations

import pytest
from celery import Celery
from django.db import transaction
from kombu import Connection

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.brokers.topology import declare
from event_tasks.errors import EventValidationError, PublishError
from event_tasks.models import OutboxEvent
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.brokers import free_port
from tests.fabric.schemas.probe import CATALOG_PROBE, PROBE_CREATED, PROBE_UPDATED
from tests.integration.test_send import depths, queues

pytestmark = [pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def publisher(broker_url):
    catalog.load("tests.fabric.schemas")
    with Connection(broker_url) as conn:
        declare(conn, queues())
        with conn.channel() as ch:
            for q in queues():
                ch.queue_purge(q.name)
    app = Celery("batch-tests", broker=broker_url, set_as_current=False)
    install(app)
    pub = Publisher(app, "prober")
    yield broker_url, pub
    pub.transport.close()


def batch(n):
    kinds = [PROBE_CREATED, PROBE_UPDATED, CATALOG_PROBE]
    return [(kinds[i % 3], {"n": i}, f"k-{i}") for i in range(n)]


def test_a_batch_reaches_every_subscriber_of_each_type(publisher):
    url, pub = publisher
    events = pub.send_many(batch(90))
    assert [e.data["n"] for e in events] == list(range(90)) and events[5].key == "k-5"
    # alpha, beta: created; gamma: every learning.#; delta: the catalog probe
    wait_until(
        lambda: depths(url) == {"events.alpha": 30, "events.beta": 30, "events.gamma": 60, "events.delta": 30},
        10,
        message=lambda: f"the batch in every queue, have {depths(url)}",
    )
    assert pub.stats["published"] == 90


def test_one_invalid_item_publishes_nothing(publisher):
    url, pub = publisher
    items = batch(10) + [(PROBE_CREATED, {"n": "eleven"})]
    with pytest.raises(EventValidationError, match="n: Not a valid integer"):
        pub.send_many(items)
    assert set(depths(url).values()) == {0}


def test_inside_a_transaction_the_batch_is_one_outbox_insert_published_on_commit(publisher, django_assert_num_queries):
    url, pub = publisher
    with transaction.atomic():
        with django_assert_num_queries(1):  # one INSERT for the whole batch
            events = pub.send_many(batch(12))
        assert set(depths(url).values()) == {0}  # nothing leaves before the commit
    wait_until(lambda: depths(url)["events.alpha"] == 4, 10, message="the batch after commit")
    wait_until(lambda: OutboxEvent.objects.filter(sent_at__isnull=False).count() == 12, 5, message="rows marked sent")
    assert sorted(OutboxEvent.objects.values_list("event_id", flat=True)) == sorted(e.id for e in events)


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_batch_to_a_broker_that_is_down_raises_publish_error(scheme):
    catalog.load("tests.fabric.schemas")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0" if scheme == "redis" else f"amqp://guest:guest@127.0.0.1:{port}//"
    app = Celery("down", broker=url, set_as_current=False)
    install(app)
    with pytest.raises(PublishError):
        Publisher(app, "prober").send_many(batch(3))


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)  # the chunks are the Redis script's
def test_redis_a_large_batch_goes_in_chunks_and_a_refused_chunk_fails_alone(publisher):
    """250 events are three script calls in one round trip; the middle one is refused (its first
    queue is not a list): the other two chunks arrive whole and in order, the error names what failed."""
    url, pub = publisher
    import redis as redis_lib

    from event_tasks.brokers.redis.fanout import CHUNK_EVENTS
    from event_tasks.errors import BatchRefused

    assert CHUNK_EVENTS == 100
    items = (
        [(PROBE_CREATED, {"n": i}) for i in range(100)]
        + [(CATALOG_PROBE, {"n": i}) for i in range(100, 110)]
        + [(PROBE_CREATED, {"n": i}) for i in range(110, 200)]
        + [(PROBE_CREATED, {"n": i}) for i in range(200, 250)]
    )
    client = redis_lib.Redis.from_url(url)
    client.set("events.delta", "not a list")  # the catalog probe's queue: only the middle chunk goes there
    try:
        with pytest.raises(PublishError) as caught:
            pub.send_many(items)
    finally:
        client.delete("events.delta")
    refused = caught.value.cause
    assert isinstance(refused, BatchRefused), refused
    assert refused.accepted == [*range(100), *range(200, 250)] and sorted(refused.failed) == list(range(100, 200))
    assert "WRONGTYPE" in str(refused.failed[100]) and caught.value.event_type == CATALOG_PROBE
    assert depths(url)["events.alpha"] == 150 and depths(url)["events.gamma"] == 150
    arrived = []
    while (raw := client.rpop("events.alpha")) is not None:  # consumers take from the tail: oldest first
        import json

        envelope, data = json.loads(__import__("base64").b64decode(json.loads(raw)["body"]))[0]
        arrived.append(data["n"])
    assert arrived == [*range(100), *range(200, 250)]
