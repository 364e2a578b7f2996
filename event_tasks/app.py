"""Wire a Celery app for event-tasks: ``install(app)`` (called by ``config/celery_app.py``).

For every process it sets JSON-only serialisation and remembers the app for ``send_event``.
For a worker of service S (``EVENT_TASKS_SERVICE=S``) it also:

* registers one task per event type S consumes (``dispatch.register_tasks``);
* makes ``events.S`` the only queue, bound on ``events`` by S's subscriptions, so the
  worker declares them when it starts (and after every reconnect);
* swaps in :class:`EventConsumer`, which gives each copy its own task id on RabbitMQ and sends
  messages Celery cannot read (not JSON, pickle, unknown type, no task headers) to S's dead
  letters instead of dropping them;
* caps retry countdowns below the Redis visibility timeout;
* on Redis: per-service ``unacked`` keys and restore schedule, the crash-safe consume step of
  ``redis_transport`` (docs/decisions/0004), and a start-up check of the broker's persistence;
* on RabbitMQ: publisher confirms, and a refusal of handler time limits past ``consumer_timeout``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery.signals import worker_ready
from celery.worker.consumer import Consumer

from . import deadletters
from .conf import settings
from .errors import ConfigurationError, InvalidEvent

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
_installed: list[Celery] = []

VISIBILITY_MARGIN = 0.5  # retry countdowns stay below half the Redis visibility timeout


def installed_app() -> Celery:
    """The app ``install`` wired; imported from ``EVENT_TASKS_CELERY_APP`` on first use."""
    if not _installed:
        path = settings().celery_app
        if not path:
            raise ConfigurationError("No Celery app is installed for event-tasks: set EVENT_TASKS_CELERY_APP "
                                     "(e.g. 'config.celery_app:app') or call event_tasks.app.install(app)")
        from celery.utils.imports import symbol_by_name

        app = symbol_by_name(path)
        if not _installed:
            install(app)
    return _installed[-1]


def install(app: Celery, service: str | None = None, *, worker: bool = True) -> Celery:
    """Configure ``app`` for the fabric. ``service`` defaults to ``EVENT_TASKS_SERVICE``."""
    conf = settings()
    service = service if service is not None else conf.service
    accepted = [str(c).lower() for c in (app.conf.accept_content or [])]
    if "pickle" in accepted or any("python-serialize" in c for c in accepted):
        raise ConfigurationError("events are JSON only: remove pickle from CELERY_ACCEPT_CONTENT")
    app.conf.update(
        task_serializer="json", result_serializer="json",
        accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_consumer="event_tasks.app:EventConsumer",
        # A retry that cannot be published gives up quickly (and is requeued, see dispatch), well
        # inside the handler time limit.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        broker_connection_timeout=conf.publish_timeout,
    )
    from .topology import broker_kind

    kind = broker_kind(app.conf.broker_url)
    options = dict(app.conf.broker_transport_options or {})
    if kind == "amqp":
        options.setdefault("confirm_publish", True)
    app.conf.broker_transport_options = options
    _installed.append(app)
    if not (worker and service):
        return app

    from .dispatch import register_tasks
    from .handlers import service_handlers
    from .services import check_service
    from .topology import service_queue

    check_service(service)
    handlers = service_handlers(service)
    queue = service_queue(service, handlers.patterns)
    cap = conf.retry_backoff_max
    if kind == "amqp" and conf.handler_time_limit >= conf.rabbitmq_consumer_timeout:
        raise ConfigurationError(
            f"EVENT_TASKS_HANDLER_TIME_LIMIT ({conf.handler_time_limit:g} s) must be below RabbitMQ's consumer_timeout "
            f"({conf.rabbitmq_consumer_timeout:g} s, EVENT_TASKS_RABBITMQ_CONSUMER_TIMEOUT): past it the broker closes "
            "the channel and hands the event to another consumer while the handler still runs")
    if kind == "redis":
        visibility = float(options.setdefault("visibility_timeout", 3600))
        cap = min(cap, visibility * VISIBILITY_MARGIN)
        # Each service restores only its own unacked messages, on its own schedule.
        options.update(unacked_key=f"unacked:{queue.name}", unacked_index_key=f"unacked_index:{queue.name}",
                       unacked_mutex_key=f"unacked_mutex:{queue.name}",
                       unacked_restore_interval=conf.restore_interval, unacked_restore_throttle=1,
                       # A sweep that dies holding the restore mutex (broker restart) blocks every
                       # later sweep until the mutex expires: kombu's default is 300 s.
                       unacked_mutex_expire=max(10, 3 * conf.restore_interval),
                       priority_steps=[0])
        app.conf.broker_transport_options = options
        # Consume with an atomic move, so no message is lost between taking and tracking it.
        app.conf.broker_transport = "event_tasks.redis_transport:Transport"
        from .brokercheck import check_redis

        check_redis(app.conf.broker_url, require=conf.require_durable_broker)
    app.conf.update(task_queues=[queue], task_default_queue=queue.name,
                    task_default_exchange="", task_default_routing_key=queue.name,
                    task_create_missing_queues=False)
    app.conf.event_tasks_service = service
    register_tasks(app, service, handlers, queue_name=queue.name, max_retries=conf.max_retries,
                   backoff_base=conf.retry_backoff, backoff_cap=cap,
                   max_redeliveries=conf.max_redeliveries, time_limit=conf.handler_time_limit)

    def prune_stale_subscriptions(sender: Any = None, **_: Any) -> None:
        # Celery's consumer declared the queue and its bindings; also drop bindings of a
        # handler that was removed, or its events would keep arriving as "unknown type".
        if getattr(sender, "app", None) is not app:
            return
        from .topology import declare

        with app.connection_for_write() as conn:
            declare(conn, [queue])

    worker_ready.connect(prune_stale_subscriptions, weak=False)
    return app


class EventConsumer(Consumer):
    """Celery's worker consumer, with per-service task ids and dead letters for bad messages."""

    @property
    def service(self) -> str:
        return self.app.conf.get("event_tasks_service") or "unknown"

    def create_task_handler(self, *args: Any, **kwargs: Any):
        handler = super().create_task_handler(*args, **kwargs)
        suffix = ":" + self.service
        limit = settings().max_payload_bytes + 4096   # the envelope and Celery's framing on top

        def on_task_received(message):
            body = message.body
            if body is not None and len(body) > limit:
                self._dead_letter(message, "too_large", f"message body of {len(body)} bytes is over "
                                                        f"EVENT_TASKS_MAX_PAYLOAD_BYTES ({limit - 4096})")
                message.ack()
                return None
            headers = message.headers
            if isinstance(headers, dict):
                task_id = headers.get("id")
                # RabbitMQ routes one message to every subscriber: make this copy's id ours.
                if isinstance(task_id, str) and not task_id.endswith(suffix):
                    headers["id"] = task_id + suffix
            return handler(message)

        return on_task_received

    def _dead_letter(self, message: Any, reason: str, detail: str) -> None:
        headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
        task_id = str(headers.get("id", "") or "")
        event_id = deadletters.event_id_of({}, task_id)
        raw = deadletters.message_raw(message)
        if reason == "too_large":
            raw["body"] = raw["body"][:4096] + "…(cut)"
        try:
            deadletters.record(service=self.service, reason=reason, detail=detail, event_id=event_id,
                               event_type=str(headers.get("task", "") or ""), task_id=task_id, raw=raw)
        except Exception:  # the worker goes on even if the database is down; the log keeps it
            log.exception("could not store dead letter (%s: %s) for message %r", reason, detail, headers)

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        self._dead_letter(message, "undecodable", f"{type(exc).__name__}: {exc}")
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._dead_letter(message, "not_a_task", "message has no Celery task headers")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        name = message.headers.get("task") if isinstance(message.headers, dict) else None
        self._dead_letter(message, "unknown_type",
                          f"service {self.service!r} has no handler for event type {name!r}")
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: BaseException) -> None:
        from kombu.exceptions import ContentDisallowed

        if isinstance(exc, ContentDisallowed):
            reason = "content_disallowed"
        elif isinstance(exc, InvalidEvent):
            reason = exc.reason
        else:
            reason = "invalid_envelope"
        self._dead_letter(message, reason, f"{type(exc).__name__}: {exc}")
        super().on_invalid_task(body, message, exc)
