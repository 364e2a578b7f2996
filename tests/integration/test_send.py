"""The send path against real brokers: validation before publishing, declare, broker down."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from celery import Celery
from kombu import Connection

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.brokers.topology import declare, service_queue, subscription_table
from event_tasks.errors import EventValidationError, PublishError, UnknownEventType
from event_tasks.send.publisher import Publisher
from tests.brokers import free_port
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import PROBE_ENV, ROOT, probe_handlers

pytestmark = pytest.mark.timeout(120)
PROBES = ("alpha", "beta", "gamma", "delta")


def queues():
    return [service_queue(s, probe_handlers(s).patterns) for s in PROBES]


def depths(url):
    """Messages waiting per probe queue (Redis has no empty queues: a missing list holds 0)."""
    out = {}
    with Connection(url) as conn:
        for q in queues():
            with conn.channel() as ch:
                try:
                    out[q.name] = ch.queue_declare(q.name, passive=True)[1]
                except conn.channel_errors:
                    out[q.name] = 0
    return out


@pytest.fixture(scope="module")
def declared(broker_url):
    catalog.load("tests.fabric.schemas")
    with Connection(broker_url) as conn:
        declare(conn, queues())
    app = Celery("send-tests", broker=broker_url, set_as_current=False)
    install(app)
    return broker_url, Publisher(app, "prober")


def test_invalid_payload_names_type_and_fields_and_publishes_nothing(declared):
    url, producer = declared
    with pytest.raises(EventValidationError) as err:
        producer.send(PROBE_CREATED, {"n": "three", "colour": "red"})
    assert err.value.event_type == PROBE_CREATED
    assert err.value.fields == ["colour", "n"]
    assert PROBE_CREATED in str(err.value) and "colour" in str(err.value) and "n:" in str(err.value)
    with pytest.raises(EventValidationError, match="key"):
        producer.send(PROBE_CREATED, {"n": 1}, key=42)
    with pytest.raises(UnknownEventType, match="org.openedx.learning.nothing.v1"):
        producer.send("org.openedx.learning.nothing.v1", {"n": 1})
    assert set(depths(url).values()) == {0}
    producer.send(PROBE_CREATED, {"n": 3})  # the same path with a valid payload does publish
    assert depths(url) == {"events.alpha": 1, "events.beta": 1, "events.gamma": 1, "events.delta": 0}


def test_declare_command_records_subscriptions_in_the_broker(broker_url, tmp_path):
    env = {
        **os.environ,
        **PROBE_ENV,
        "CELERY_BROKER_URL": broker_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
    }
    env.pop("EVENT_TASKS_SERVICE", None)
    out = subprocess.run(
        [sys.executable, "manage.py", "events", "declare"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "declared events.gamma: org.openedx.learning.#" in out.stdout
    with Connection(broker_url) as conn:
        if conn.transport.driver_type == "redis":
            table = subscription_table(conn)
            assert ("org.openedx.learning.#", "events.gamma") in table
            assert ("org.openedx.catalog.probe.changed.v1", "events.delta") in table


def test_redis_declare_prunes_subscriptions_no_handler_wants(fresh_redis_url):
    # Redis only: pruning reads the binding table, which AMQP cannot list.
    with Connection(fresh_redis_url) as conn:
        declare(conn, [service_queue("alpha", ["org.openedx.learning.probe.updated.v1", PROBE_CREATED])])
        assert ("org.openedx.learning.probe.updated.v1", "events.alpha") in subscription_table(conn)
        declare(conn, [service_queue("alpha", [PROBE_CREATED])])
        rows = [r for r in subscription_table(conn) if r[1] == "events.alpha"]
        assert rows == [(PROBE_CREATED, "events.alpha")]


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_broker_down_raises_publish_error_after_bounded_retries(scheme):
    catalog.load("tests.fabric.schemas")
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0" if scheme == "redis" else f"amqp://guest:guest@127.0.0.1:{port}//"
    app = Celery("down", broker=url, set_as_current=False)
    app.conf.broker_connection_timeout = 0.5
    install(app)
    producer = Publisher(app, "prober")
    started = time.monotonic()
    with pytest.raises(PublishError) as err:
        producer.send(PROBE_CREATED, {"n": 1})
    assert err.value.event_type == PROBE_CREATED and err.value.event_id
    assert producer.stats["failed"] == 1 and producer.stats["published"] == 0
    assert time.monotonic() - started < 30  # bounded: never blocks forever


def test_worker_start_drops_subscriptions_of_removed_handlers(fresh_redis_url, workdir, probe_template_db):
    """Redis: a binding left by a handler that no longer exists is removed when the worker starts."""
    from tests.integration.fabric import Platform

    stale = "org.openedx.learning.probe.updated.v1"
    with Connection(fresh_redis_url) as conn:
        declare(conn, [service_queue("beta", [stale, PROBE_CREATED])])
    platform = Platform(fresh_redis_url, workdir / "prune", template_db=probe_template_db)
    try:
        platform.start("beta")
        with Connection(fresh_redis_url) as conn:
            from event_tasks.testing import wait_until

            wait_until(
                lambda: (stale, "events.beta") not in subscription_table(conn),
                20,
                message="the stale binding to disappear",
            )
            assert (PROBE_CREATED, "events.beta") in subscription_table(conn)
    finally:
        platform.stop_all()
