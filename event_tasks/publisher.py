"""The send path: ``send_event(type, data, key=None)`` → one durable copy per subscribed queue.

1. look the type up in the catalog; 2. validate the payload with its schema; 3. build the
envelope; 4. publish one copy to each subscribed queue.

* Redis: one EVALSHA of ``fanout.lua`` reads the live subscription table (kombu's binding set)
  and LPUSHes a copy to each matching queue atomically, each with its own task id and delivery
  tag, through the default exchange (so retries, acks and restores stay in that service).
* RabbitMQ (and ``memory://`` in unit tests): one publish to the topic exchange ``events``
  (the server routes), with publisher confirms; each service's worker gives its copy its own
  task id on receipt (see ``app.EventConsumer``).
* Inside ``transaction.atomic()`` the event is written to the outbox table in the same
  transaction instead, and published right after commit (or by the relay, ``outbox.py``, if
  the broker is down then). Rolled back: never published.

Everything that can be built once (schemas, script, templates, connections) is built once.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from django.db import connection as db_connection

from . import catalog
from .conf import Settings, settings
from .envelope import SPECVERSION, Event, format_time
from .errors import EventValidationError, PayloadTooLarge, PublishError
from .message import QUEUE_SLOT, SERVICE_SLOT, RedisMessageTemplate, encode_body, headers
from .topology import BINDING_KEY, broker_kind, events_exchange

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
FANOUT_LUA = resources.files(__package__).joinpath("fanout.lua").read_text()


class Transport(Protocol):
    errors: tuple[type[BaseException], ...]

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish; return how many queues got a copy (``None`` when the broker routes)."""

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        """Publish one copy to one queue only (dead-letter replay)."""


class RedisFanout:
    """Per-queue copies pushed atomically by a Lua script reading the live binding set."""

    def __init__(self, url: str, transport_options: Mapping[str, Any], conf: Settings) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        if url.startswith("redis+socket://"):
            url = "unix://" + url[len("redis+socket://"):]
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=conf.publish_timeout,
            socket_timeout=conf.publish_timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), conf.publish_retries),
            retry_on_timeout=True,
        )
        self.keyprefix = transport_options.get("global_keyprefix", "") or ""
        self.binding_key = self.keyprefix + BINDING_KEY.format(exchange=conf.exchange)
        self.queue_prefix = conf.queue_prefix
        self.script = self.client.register_script(FANOUT_LUA)
        self.template = RedisMessageTemplate()
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError,)

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int:
        message = self.template.render(event_type, event_id, body, argsrepr)
        return self.script(keys=[self.binding_key],
                           args=[event_type, self.queue_prefix, self.keyprefix, message])

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        message = self.template.render(event_type, event_id, body, argsrepr)
        self.client.lpush(self.keyprefix + queue, message.replace(SERVICE_SLOT, service).replace(QUEUE_SLOT, queue))


class KombuFanout:
    """One publish to the topic exchange; the broker copies it into each bound queue."""

    def __init__(self, app: Celery, conf: Settings) -> None:
        self.app = app
        self.exchange = events_exchange()
        self.timeout = conf.publish_timeout
        self.retry_policy = {"max_retries": conf.publish_retries, "interval_start": 0,
                             "interval_step": 0.2, "interval_max": 1.0}
        from kombu.exceptions import KombuError

        self.errors = (*app.connection_for_write().connection_errors, KombuError, OSError)

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.app.producer_pool.acquire(block=True, timeout=self.timeout) as producer:
            producer.publish(
                body, exchange=self.exchange, routing_key=event_type,
                headers=headers(event_type, event_id, event_id, argsrepr),
                content_type="application/json", content_encoding="utf-8",
                delivery_mode=2, correlation_id=event_id, declare=[self.exchange],
                retry=True, retry_policy=self.retry_policy,
            )
        return None

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.app.producer_pool.acquire(block=True, timeout=self.timeout) as producer:
            producer.publish(
                body, exchange="", routing_key=queue,
                headers=headers(event_type, event_id, f"{event_id}:{service}", argsrepr),
                content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                correlation_id=f"{event_id}:{service}", retry=True, retry_policy=self.retry_policy,
            )


def transport_for(app: Celery, conf: Settings) -> Transport:
    url = app.conf.broker_url or ""
    if broker_kind(url) == "redis":
        return RedisFanout(url, app.conf.broker_transport_options or {}, conf)
    return KombuFanout(app, conf)


class Publisher:
    """Validates and publishes events for one producing service."""

    def __init__(self, app: Celery, service: str, conf: Settings | None = None) -> None:
        self.app = app
        self.service = service
        self.conf = conf or settings()
        self.transport = transport_for(app, self.conf)
        self.stats: Counter[str] = Counter()

    def send(self, event_type: str, data: Mapping[str, Any], *, key: str | None = None) -> Event:
        entry = catalog.get(event_type)
        if key is not None and not isinstance(key, str):
            raise EventValidationError(event_type, {"key": [f"must be a string or None, not {type(key).__name__}"]})
        loaded, wire = entry.encode(data)
        event_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.timezone.utc)
        envelope = {"id": event_id, "type": event_type, "source": self.service,
                    "time": format_time(now), "specversion": SPECVERSION, "key": key}
        body, argsrepr = encode_body(envelope, wire)
        if len(body) > self.conf.max_payload_bytes:
            raise PayloadTooLarge(event_type, len(body), self.conf.max_payload_bytes)
        event = Event(id=event_id, type=event_type, source=self.service, time=now, key=key, data=loaded)
        if self.conf.outbox and db_connection.in_atomic_block:
            from .outbox import enqueue

            enqueue(self, event, body, argsrepr)
            self.stats["outboxed"] += 1
            return event
        self.publish(event_type, event_id, body, argsrepr)
        return event

    def publish_to(self, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> str:
        """Publish one copy to ``service``'s queue only (replay); returns the queue name."""
        queue = self.conf.queue_name(service)
        try:
            self.transport.publish_to(queue, service, event_type, event_id, body, argsrepr)
        except self.transport.errors as exc:
            raise PublishError(event_type, event_id, exc) from exc
        return queue

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish a prepared event body now; :class:`PublishError` if the broker does not take it."""
        try:
            copies = self.transport.publish(event_type, event_id, body, argsrepr)
        except self.transport.errors as exc:
            self.stats["failed"] += 1
            raise PublishError(event_type, event_id, exc) from exc
        self.stats["published"] += 1
        if copies is not None:
            self.stats["copies"] += copies
            if copies == 0:
                self.stats["unrouted"] += 1
                log.info("event %s (%s) has no subscriber yet; nobody gets it", event_id, event_type)
        return copies


_lock = threading.Lock()
_publisher: tuple[int, Publisher] | None = None


def default_publisher() -> Publisher:
    """The process's publisher, built on first use from the installed Celery app (per PID)."""
    global _publisher
    current = _publisher
    if current is not None and current[0] == os.getpid():
        return current[1]
    from .app import installed_app

    with _lock:
        if _publisher is None or _publisher[0] != os.getpid():
            app = installed_app()
            conf = settings()
            if not conf.service:
                from .services import known_services
                from .errors import UnknownService
                raise UnknownService(None, known_services())
            _publisher = (os.getpid(), Publisher(app, conf.service, conf))
        return _publisher[1]


def reset_default_publisher() -> None:
    """Forget the process's publisher (tests that change settings or brokers call this)."""
    global _publisher
    with _lock:
        _publisher = None


def send_event(event_type: str, data: Mapping[str, Any], *, key: str | None = None) -> Event:
    """Validate ``data`` against ``event_type``'s schema and publish it to every subscriber.

    Raises :class:`~event_tasks.errors.UnknownEventType` or
    :class:`~event_tasks.errors.EventValidationError` (naming the type and each bad field)
    before anything is published, and :class:`~event_tasks.errors.PublishError` when the broker
    does not accept it after bounded retries. Returns the :class:`~event_tasks.Event` sent.
    """
    return default_publisher().send(event_type, data, key=key)
