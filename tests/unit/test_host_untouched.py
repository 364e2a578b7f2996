"""``install(app)`` and a worker's event wiring leave the host's own Celery configuration, routing,
task ids and serializers as the host set them (docs/decisions/0005)."""

from __future__ import annotations

import copy
import json

import pytest
from celery import Celery
from django.test import override_settings
from kombu.serialization import register

from event_tasks import conf
from event_tasks.app import install
from event_tasks.consume.worker import REDIS_TRANSPORT, prepare_worker

PROBES = {"EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas"}
# The host's own serializer: anything but the fabric's JSON (kombu's registry; no extra package).
register(
    "legacy",
    lambda value: "legacy:" + json.dumps(value),
    lambda text: json.loads(text[len("legacy:") :]),
    content_type="application/x-legacy",
    content_encoding="utf-8",
)
# Each test builds the same host app anew; Celery warns that the task names are taken already.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")


def host_app(broker: str) -> Celery:
    """An existing service: its own default queue and exchange, a route, its own serializer."""
    from kombu import Exchange, Queue

    app = Celery("legacy", broker=broker, set_as_current=False)
    legacy = Exchange("legacy", type="direct")
    app.conf.update(
        task_default_queue="legacy",
        task_default_exchange="legacy",
        task_queues=[
            Queue("legacy", legacy, routing_key="legacy"),
            Queue("legacy.reports", legacy, routing_key="legacy.reports"),
        ],
        task_routes={"legacy.reports.*": {"queue": "legacy.reports"}},
        task_serializer="legacy",
        accept_content=["legacy", "json"],
        result_serializer="legacy",
        task_create_missing_queues=False,
        task_acks_late=False,
    )

    @app.task(name="legacy.add")
    def add(a, b):
        return a + b

    @app.task(name="legacy.reports.weekly")
    def weekly():
        return "ok"

    return app


def snapshot(app: Celery) -> dict:
    return {k: copy.deepcopy(v) for k, v in app.conf.items() if not k.startswith("event_tasks")}


@pytest.fixture
def alpha_service():
    with override_settings(EVENT_TASKS_SERVICE="alpha", **PROBES):
        conf.settings.cache_clear()
        from event_tasks import handlers

        handlers.reset()
        # alpha's handlers come from its module (this process installs no probe apps).
        import importlib

        module = importlib.import_module("tests.fabric.services.alpha.handlers")
        handlers.discovered.cache_clear()
        original = handlers.discovered
        handlers.discovered = lambda: {"alpha": tuple(handlers.collect(module))}
        try:
            yield
        finally:
            handlers.discovered = original
            handlers.reset()
            conf.settings.cache_clear()


@pytest.mark.parametrize("broker", ["memory://", "redis://127.0.0.1:1/0"])
def test_configuration_is_unchanged_by_install_and_by_wiring_a_worker(broker, alpha_service):
    app = host_app(broker)
    before = snapshot(app)
    install(app)
    assert snapshot(app) == before, "install(app) changed the host's configuration"
    prepare_worker(app)
    after = snapshot(app)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # Redis: the transport class whose non-event channels behave exactly as kombu's (0005).
    assert changed == ({"broker_transport"} if broker.startswith("redis") else set())
    if broker.startswith("redis"):
        assert after["broker_transport"] == REDIS_TRANSPORT


def test_host_tasks_keep_their_routing_ids_and_serializer_in_an_event_worker(alpha_service):
    app = host_app("memory://")
    install(app)
    prepare_worker(app)
    router = app.amqp.router
    assert router.route({}, "legacy.add")["queue"].name == "legacy"
    assert router.route({}, "legacy.reports.weekly")["queue"].name == "legacy.reports"
    result = app.tasks["legacy.add"].apply_async((1, 2))
    with app.connection_for_read() as connection:
        message = app.amqp.queues["legacy"](connection.default_channel).get(no_ack=True, accept=["legacy"])
    assert message.headers["id"] == result.id  # no ":alpha" suffix
    assert message.content_type == "application/x-legacy"  # the host's choice, untouched
    assert message.delivery_info["routing_key"] == "legacy"
    event_task = app.tasks["org.openedx.learning.probe.created.v1"]
    assert event_task.serializer == "json" and event_task.acks_late and event_task.reject_on_worker_lost
    assert app.tasks["legacy.add"].acks_late is False


def test_event_results_are_json_even_when_the_host_stores_its_own_otherwise(alpha_service):
    app = host_app("memory://")
    app.conf.result_backend = "cache+memory://"
    install(app)
    prepare_worker(app)
    assert app.tasks["org.openedx.learning.probe.created.v1"].backend.serializer == "json"
    assert app.tasks["legacy.add"].backend.serializer == "legacy"


def test_the_event_queue_routes_retries_through_the_default_exchange(alpha_service):
    app = host_app("memory://")
    install(app)
    prepare_worker(app)
    queue = app.amqp.queues["events.alpha"]
    assert queue.exchange.name == "" and queue.routing_key == "events.alpha"
    assert [b.routing_key for b in queue.bindings] == ["org.openedx.learning.probe.created.v1"]
