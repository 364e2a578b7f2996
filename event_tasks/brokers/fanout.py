"""Putting one event's copies on the broker: the fabric's own connections, never the host's.

:func:`fanout_for` picks the broker's way of making the copies:

* Redis (``brokers.redis.fanout``): one script call reads the live subscription table and pushes
  a copy to each matching queue atomically, each with its own task id;
* RabbitMQ (``brokers.rabbitmq.fanout``, and ``memory://`` in unit tests): one publish to the
  topic exchange ``events`` with publisher confirms; the server routes.

Both keep their connection for the life of the process (one per PID: see ``send.publisher``), so
the host's Celery producer pool, transport options and confirm settings stay as the host set them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ..conf import Settings
from .message import Prepared
from .rabbitmq.fanout import KombuFanout
from .redis.fanout import RedisFanout
from .topology import broker_kind


class Fanout(Protocol):
    errors: tuple[type[BaseException], ...]
    connection_errors: tuple[type[BaseException], ...]  # the broker is unreachable (not: it refused a message)

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish; return how many queues got a copy (``None`` when the broker routes)."""

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        """Publish one copy to one queue only (dead-letter replay)."""

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """Publish a batch in one round trip (Redis) or with one wait for every confirm (RabbitMQ)."""

    def close(self) -> None:
        """Release the connection."""


def fanout_for(
    url: str, transport_options: Mapping[str, object], conf: Settings, failover_strategy: str | None = None
) -> Fanout:
    """The fan-out for a broker URL (``ConfigurationError`` for a broker the fabric does not run on).

    ``url`` may be a failover list (``amqp://n1;amqp://n2``), tried with ``failover_strategy``
    (Celery's ``broker_failover_strategy``)."""
    if broker_kind(url) == "redis":
        return RedisFanout(url, transport_options, conf)
    return KombuFanout(url, transport_options, conf, failover_strategy=failover_strategy)
