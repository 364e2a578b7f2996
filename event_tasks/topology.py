"""Queues and subscriptions: one durable queue ``events.<service>`` per consuming service.

A service's subscriptions are bindings of its queue on the topic exchange ``events``, one per
event type or pattern its handlers consume. They live in the broker, so every producer sees
them: on RabbitMQ as real bindings, on Redis as kombu's binding set
``_kombu.binding.events`` (the "subscription table" the publish script reads).

Each queue is declared with the *default* exchange as its own exchange (routing key = queue
name) and the topic bindings as extra ``bindings``: Celery's retries and kombu's restores then go
straight back to the same queue and never through ``events`` (see docs/decisions/0001).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu import Connection, Exchange, Queue, binding

from .conf import settings
from .errors import ConfigurationError

BINDING_SEP = "\x06\x16"
BINDING_KEY = "_kombu.binding.{exchange}"


def events_exchange(name: str | None = None) -> Exchange:
    return Exchange(name or settings().exchange, type="topic", durable=True)


def service_queue(service: str, patterns: Iterable[str]) -> Queue:
    """The durable queue of ``service`` bound to ``events`` by each pattern."""
    conf = settings()
    name = conf.queue_name(service)
    exchange = events_exchange()
    queue = Queue(name, exchange=Exchange(""), routing_key=name, durable=True,
                  bindings=[binding(exchange, routing_key=p) for p in sorted(set(patterns))])
    # kombu drops the queue's own exchange when it has bindings; the default exchange ("", a
    # name that is never declared or bound) is what routes retries straight back here.
    queue.exchange = Exchange("")
    return queue


def put_queue(app: Any, queue: Queue) -> None:
    """Make ``queue`` known to ``app``'s router (and consumed, where ``-Q`` selected its name).

    Not ``Queues.add``: that would give a queue on the default exchange the host's default
    exchange instead, and bind the event queue there.
    """
    queues = app.amqp.queues
    dict.__setitem__(queues, queue.name, queue)
    selected = queues._consume_from
    if selected is not None and queue.name in selected:
        selected[queue.name] = queue


def declare(connection: Connection, queues: Iterable[Queue]) -> list[str]:
    """Declare exchange, queues and bindings; prune stale bindings of these queues (Redis).

    Returns the declared queue names. Safe to run repeatedly (deploys, worker start).
    """
    declared = []
    with connection.channel() as channel:
        events_exchange()(channel).declare()
        for queue in queues:
            queue(channel).declare()
            declared.append(queue.name)
            if is_redis(connection):
                _prune_redis_bindings(channel.client, queue)
    return declared


def _prune_redis_bindings(client, queue: Queue) -> None:
    """Remove bindings of ``queue`` that no handler asks for any more (a removed handler)."""
    wanted = {b.routing_key for b in queue.bindings}
    key = BINDING_KEY.format(exchange=settings().exchange)
    for member in client.smembers(key):
        text = member.decode() if isinstance(member, bytes) else member
        routing_key, _, name = text.split(BINDING_SEP)
        if name == queue.name and routing_key not in wanted:
            client.srem(key, member)
            client.srem(f"_kombu.binding_permanent.{settings().exchange}", member)


def broker_kind(url: str) -> str:
    """``"redis"``, ``"amqp"`` or ``"memory"`` (unit tests) for a broker URL; ConfigurationError otherwise."""
    scheme = (url or "").split("://", 1)[0]
    for kind, schemes in (("redis", ("redis", "rediss", "redis+socket")), ("amqp", ("amqp", "amqps", "pyamqp")),
                          ("memory", ("memory",))):
        if scheme in schemes:
            return kind
    raise ConfigurationError(f"Unsupported broker {scheme!r} in CELERY_BROKER_URL: event-tasks runs on "
                             "Redis (redis://) or RabbitMQ (amqp://)")


def is_redis(connection: Connection) -> bool:
    return connection.transport.driver_type == "redis"


def subscription_table(connection: Connection) -> list[tuple[str, str]]:
    """``(pattern, queue)`` pairs bound on ``events`` (Redis only: AMQP cannot list bindings)."""
    if not is_redis(connection):
        raise NotImplementedError("listing bindings needs the RabbitMQ management API; use "
                                  "`rabbitmqctl list_bindings` on RabbitMQ")
    with connection.channel() as channel:
        members = channel.client.smembers(BINDING_KEY.format(exchange=settings().exchange))
    rows = []
    for member in members:
        text = member.decode() if isinstance(member, bytes) else member
        routing_key, _, queue = text.split(BINDING_SEP)
        rows.append((routing_key, queue))
    return sorted(rows, key=lambda r: (r[1], r[0]))
