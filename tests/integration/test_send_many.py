"""``send_events``: a validated batch, one round trip on Redis, one wait for every confirm on
RabbitMQ, one outbox insert inside a transaction. Both brokers, real queues."""
from __future__ import annotations

import pytest
from celery import Celery
from django.db import transaction
from kombu import Connection

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.errors import EventValidationError, PublishError
from event_tasks.models import OutboxEvent
from event_tasks.publisher import Publisher
from event_tasks.testing import wait_until
from event_tasks.topology import declare
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
    wait_until(lambda: depths(url) == {"events.alpha": 30, "events.beta": 30, "events.gamma": 60, "events.delta": 30},
               10, message=lambda: f"the batch in every queue, have {depths(url)}")
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
        with django_assert_num_queries(1):     # one INSERT for the whole batch
            events = pub.send_many(batch(12))
        assert set(depths(url).values()) == {0}    # nothing leaves before the commit
    wait_until(lambda: depths(url)["events.alpha"] == 4, 10, message="the batch after commit")
    assert OutboxEvent.objects.filter(sent_at__isnull=False).count() == 12
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
