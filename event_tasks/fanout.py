"""Putting one event's copies on the broker: the fabric's own connections, never the host's.

* :class:`RedisFanout`: one EVALSHA of ``fanout.lua`` reads the live subscription table (kombu's
  binding set) and LPUSHes a copy to each matching queue atomically, each with its own task id
  and delivery tag, through the default exchange (so retries, acks and restores stay in that
  service).
* :class:`KombuFanout` (RabbitMQ, and ``memory://`` in unit tests): one publish to the topic
  exchange ``events`` (the server routes), with publisher confirms on a connection of the
  fabric's own; each service's worker gives its copy its own task id on receipt.

Both keep their connection for the life of the process (one per PID: see ``publisher``), so
the host's Celery producer pool, transport options and confirm settings stay as the host set them.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any, Protocol

from kombu import Connection, Producer

from .conf import Settings
from .message import QUEUE_SLOT, SERVICE_SLOT, RedisMessageTemplate, headers
from .topology import BINDING_KEY, broker_kind, events_exchange

FANOUT_LUA = resources.files(__package__).joinpath("fanout.lua").read_text()


class Fanout(Protocol):
    errors: tuple[type[BaseException], ...]

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish; return how many queues got a copy (``None`` when the broker routes)."""

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        """Publish one copy to one queue only (dead-letter replay)."""

    def close(self) -> None:
        """Release the connection."""


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

    def close(self) -> None:
        self.client.close()


class KombuFanout:
    """One publish to the topic exchange on a connection of the fabric's own, with confirms."""

    def __init__(self, url: str, transport_options: Mapping[str, Any], conf: Settings,
                 transport: Any = None) -> None:
        options = dict(transport_options)
        if broker_kind(url) == "amqp":
            options["confirm_publish"] = True
        self.connection = Connection(url, transport=transport, transport_options=options,
                                     connect_timeout=conf.publish_timeout)
        self.exchange = events_exchange(conf.exchange)
        self.retry_policy = {"max_retries": conf.publish_retries, "interval_start": 0,
                             "interval_step": 0.2, "interval_max": 1.0}
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        from kombu.exceptions import KombuError

        self.errors = (*self.connection.connection_errors, *self.connection.channel_errors, KombuError, OSError)

    @contextlib.contextmanager
    def producer(self) -> Iterator[Producer]:
        """The fabric's producer (confirms on), held for the duration of the block."""
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self.connection)
            yield self._producer

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.producer() as producer:
            producer.publish(
                body, exchange=self.exchange, routing_key=event_type,
                headers=headers(event_type, event_id, event_id, argsrepr),
                content_type="application/json", content_encoding="utf-8",
                delivery_mode=2, correlation_id=event_id, declare=[self.exchange],
                retry=True, retry_policy=self.retry_policy,
            )
        return None

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.producer() as producer:
            producer.publish(
                body, exchange="", routing_key=queue,
                headers=headers(event_type, event_id, f"{event_id}:{service}", argsrepr),
                content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                correlation_id=f"{event_id}:{service}", retry=True, retry_policy=self.retry_policy,
            )

    def close(self) -> None:
        with self._lock:
            self._producer = None
            self.connection.release()


def fanout_for(url: str, transport_options: Mapping[str, Any], conf: Settings) -> Fanout:
    """The fan-out for a broker URL (``ConfigurationError`` for a broker the fabric does not run on)."""
    if broker_kind(url) == "redis":
        return RedisFanout(url, transport_options, conf)
    return KombuFanout(url, transport_options, conf)
