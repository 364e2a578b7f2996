"""Queues and subscriptions: one durable queue ``events.<service>`` per consuming service.

A service's subscriptions are bindings of its queue on the topic exchange ``events``, one per
event type or pattern its handlers consume. They live in the broker, so every producer sees
them: on RabbitMQ as real bindings, on Redis as kombu's binding set
``_kombu.binding.events`` (the "subscription table" the publish script reads).

Each queue is declared with the *default* exchange as its own exchange (routing key = queue
name) and the topic bindings as extra ``bindings``: Celery's retries and kombu's restores then go
straight back to the same queue and never through ``events`` (see docs/decisions/0001). On RabbitMQ
a queue is also bound on its service's own direct exchange ``events.<service>.retry``, which the
worker's retries use instead of the default exchange (docs/decisions/0017).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kombu import Connection, Exchange, Queue, binding
from kombu.utils.url import maybe_sanitize_url

from ..conf import Settings, settings
from ..errors import ManagementAPIUnavailable, UnsupportedBroker
from .archive import archive_name, archive_queue
from .rabbitmq import delays
from .rabbitmq.api import ManagementAPI

if TYPE_CHECKING:
    import redis
    from celery import Celery

log = logging.getLogger(__name__)
BINDING_SEP = "\x06\x16"
BINDING_KEY = "_kombu.binding.{exchange}"
# Redis: the queues of each event type as the publish script worked them out from BINDING_KEY,
# kept until the binding set changes (``brokers/redis/fanout.lua``); whoever changes the set
# through the fabric drops it (:func:`invalidate_routes`). Safe to delete at any time.
ROUTES_KEY = "_event_tasks.routes.{exchange}"


def events_exchange(name: str | None = None) -> Exchange:
    return Exchange(name or settings().exchange, type="topic", durable=True)


def retry_exchange_name(service: str) -> str:
    """``events.<service>.retry``: the direct exchange of a service's own retries (RabbitMQ, decision 0017)."""
    return settings().queue_name(service) + ".retry"


def service_retry_exchange(service: str) -> Exchange:
    return Exchange(retry_exchange_name(service), type="direct", durable=True)


def service_queue(
    service: str,
    patterns: Iterable[str],
    queue_type: str | None = None,
    *,
    retry_exchange: bool = False,
    single_active: bool = False,
) -> Queue:
    """The durable queue of ``service`` bound to ``events`` by each pattern.

    ``queue_type``: ``"classic"`` or ``"quorum"`` (RabbitMQ; default ``EVENT_TASKS_QUEUE_TYPE``;
    :func:`queue_type_for` gives a broker's). A quorum queue gets an explicit delivery limit, past
    which the broker moves a message to the service's parked queue (at-least-once dead-lettering,
    so the move itself is confirmed), and a binding on ``celery_delayed_delivery`` through which
    its retries come back after their delay (``rabbitmq.delays``). ``retry_exchange`` (RabbitMQ):
    also bound on the service's own direct exchange ``events.<service>.retry`` (routing key: the
    queue's name), which its retries (classic queues) and sent-back copies (both types) go through
    instead of the default exchange, so its broker user needs no write on ``amq.default`` (0017).
    ``single_active`` (RabbitMQ; a service with ordered handlers): ``x-single-active-consumer``, so
    one worker at a time consumes it and the others stand by (``consume.ordering``, decision 0020).
    """
    conf = settings()
    name = conf.queue_name(service)
    exchange = events_exchange()
    quorum = (queue_type or conf.queue_type) == "quorum"
    extra = [delays.delivery_binding(name)] if quorum else []
    if retry_exchange:
        extra.append(binding(service_retry_exchange(service), routing_key=name))
    return ServiceQueue(
        name,
        exchange=Exchange(""),
        routing_key=name,
        durable=True,
        bindings=[binding(exchange, routing_key=p) for p in sorted(set(patterns))] + extra,
        queue_arguments={**(quorum_arguments(conf, service) if quorum else {}), **SINGLE_ACTIVE}
        if single_active
        else (quorum_arguments(conf, service) if quorum else None),
    )


SINGLE_ACTIVE = {"x-single-active-consumer": True}


class ServiceQueue(Queue):
    """A service queue: its own exchange is the default exchange, beside its bindings.

    kombu drops a queue's own exchange when it has bindings, in every copy too (``bind()`` copies);
    the default exchange ("", a name that is never declared or bound) is what routes retries
    straight back here. And Celery's native delayed delivery step (a worker with quorum queues)
    binds a queue without its own exchange through each of its bindings' exchanges, ``#.<key>``:
    it would join ``events`` to the delay levels, and a retry could reach another service.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # Any: kombu Queue's own arguments, passed through
        super().__init__(*args, **kwargs)
        if self.exchange is None:
            self.exchange = Exchange("")


def quorum_arguments(conf: Settings, service: str) -> dict[str, object]:
    """The arguments of a service's quorum queue (RabbitMQ 3.10 has no default delivery limit)."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": conf.quorum_delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": conf.parked_queue_name(service),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",  # at-least-once dead-lettering requires it
    }


def parked_queue(service: str) -> Queue:
    """Where a service's quorum queue puts a message past its delivery limit (a quorum queue too)."""
    name = settings().parked_queue_name(service)
    return Queue(
        name, exchange=Exchange(""), routing_key=name, durable=True, queue_arguments={"x-queue-type": "quorum"}
    )


def service_of(queue_name: str) -> str:
    """The service whose queue is ``queue_name`` (``events.lms`` -> ``lms``)."""
    return queue_name[len(settings().queue_prefix) :]


def declare_quorum_paths(connection: Connection, service: str) -> Queue:
    """Declare what a service's quorum queue hands messages to (its parked queue, the retry delay
    levels) before it is consumed; returns the parked queue."""
    delays.declare_delays(connection)
    parked = parked_queue(service)
    with connection.channel() as channel:
        parked(channel).declare()
    return parked


def is_quorum(queue: Queue) -> bool:
    return (queue.queue_arguments or {}).get("x-queue-type") == "quorum"


def queue_type_for(url: str) -> str:
    """The type of the fabric's queues on the broker of ``url``: the setting on RabbitMQ; Redis has one kind."""
    return settings().queue_type if broker_kind(url) == "amqp" else "classic"


def put_queue(app: Celery, queue: Queue) -> None:
    """Make ``queue`` known to ``app``'s router (and consumed, where ``-Q`` selected its name).

    Not ``Queues.add``: that would give a queue on the default exchange the host's default
    exchange instead, and bind the event queue there.
    """
    queues = app.amqp.queues
    dict.__setitem__(queues, queue.name, queue)
    # celery-types lack Queues._consume_from (the queues -Q selected; None: all of them)
    selected = queues._consume_from  # type: ignore[attr-defined]
    if selected is not None and queue.name in selected:
        selected[queue.name] = queue


def declare(connection: Connection, queues: Iterable[Queue], *, prune: bool = True) -> list[str]:
    """Declare exchange, queues and bindings; prune stale bindings of these queues.

    Returns the declared queue names. Safe to run repeatedly (deploys, worker start). On RabbitMQ
    each service queue is also bound on its retry exchange ``events.<service>.retry`` (0017). Pruning
    removes the bindings of a queue that no handler asks for any more (a removed handler): on
    Redis from the binding set (also the bindings of ``events tail`` runs that were killed), on
    RabbitMQ with ``queue_unbind``, listing the bindings through the management API; where that
    API does not answer, the stale bindings stay and a warning says so (``events topology verify``
    reports them).
    """
    declared = []
    queues = list(queues)
    if not is_redis(connection) and any(is_quorum(q) for q in queues):
        delays.declare_delays(connection)
    with connection.channel() as channel:
        events_exchange()(channel).declare()
        for queue in queues:
            if is_quorum(queue):
                parked_queue(service_of(queue.name))(channel).declare()
            queue(channel).declare()
            if not is_redis(connection) and isinstance(queue, ServiceQueue):  # its way back (0017), every caller's
                own = service_retry_exchange(service_of(queue.name))
                own(channel).declare()
                channel.queue_bind(queue.name, own.name, queue.name)  # type: ignore[attr-defined]  # kombu's stubs: a bare StdChannel
            declared.append(queue.name)
            if prune and is_redis(connection):
                _prune_redis_bindings(channel.client, queue)  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
        if prune and is_redis(connection):
            sweep_tail_bindings(channel.client)  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
        if is_redis(connection):
            invalidate_routes(channel.client)  # type: ignore[attr-defined]  # as above
    if settings().archive_days is not None and connection.transport.driver_type == "amqp":
        declare_archive(connection)
    if prune and not is_redis(connection) and connection.transport.driver_type == "amqp":
        try:
            bound = bindings(connection)
        except ManagementAPIUnavailable as exc:
            log.warning("stale subscriptions of %s are not pruned: %s", ", ".join(declared), exc)
            return declared
        for queue in queues:
            wanted = {b.routing_key for b in queue.bindings}
            for routing_key, name in bound:
                if name == queue.name and routing_key not in wanted:
                    unbind(connection, name, routing_key)
                    log.info("pruned stale subscription %s <- %s", name, routing_key)
    return declared


def declare_archive(connection: Connection) -> None:
    """RabbitMQ: the archive's stream queue bound with ``#`` (``brokers.archive``). One declared
    with another retention is a warning (change ``x-max-age`` with a policy), not a failed start."""
    try:
        with connection.channel() as channel:
            archive_queue(settings())(channel).declare()
    except connection.channel_errors as exc:
        log.warning("the archive %s was not declared: %s", archive_name(settings()), exc)


def _prune_redis_bindings(client: redis.Redis, queue: Queue) -> None:
    """Remove bindings of ``queue`` that no handler asks for any more (a removed handler)."""
    wanted = {b.routing_key for b in queue.bindings}
    for routing_key, name in redis_bindings(client):
        if name == queue.name and routing_key not in wanted:
            _redis_unbind(client, name, routing_key)


def redis_bindings(client: redis.Redis) -> list[tuple[str, str]]:
    rows = []
    for member in client.smembers(BINDING_KEY.format(exchange=settings().exchange)):
        text = member.decode() if isinstance(member, bytes) else member
        routing_key, _, name = text.split(BINDING_SEP)
        rows.append((routing_key, name))
    return sorted(rows, key=lambda r: (r[1], r[0]))


def _redis_unbind(client: redis.Redis, queue: str, routing_key: str) -> None:
    # A member is routing key, kombu's compiled pattern and queue: match the two ends.
    exchange = settings().exchange
    key = BINDING_KEY.format(exchange=exchange)
    for member in client.smembers(key):
        text = member.decode() if isinstance(member, bytes) else member
        parts = text.split(BINDING_SEP)
        if parts[0] == routing_key and parts[-1] == queue:
            client.srem(key, member)
            client.srem(f"_kombu.binding_permanent.{exchange}", member)
    invalidate_routes(client)


def invalidate_routes(client: redis.Redis) -> None:
    """Drop the routes the publish script keeps (Redis): the binding set changed. The script also
    notices a set whose size changed by itself; this covers a change that keeps the size."""
    client.delete(ROUTES_KEY.format(exchange=settings().exchange))


def bindings(connection: Connection) -> list[tuple[str, str]]:
    """``(routing key, queue)`` of every binding on ``events``: Redis's binding set, or RabbitMQ's
    management API (:class:`~event_tasks.errors.ManagementAPIUnavailable` when it does not answer)."""
    if is_redis(connection):
        with connection.channel() as channel:
            return redis_bindings(channel.client)  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
    api = ManagementAPI.for_broker(connection.as_uri(include_password=True), settings().rabbitmq_management_url)
    return sorted(api.bindings(settings().exchange), key=lambda r: (r[1], r[0]))


def passive_declare(connection: Connection, queue: str) -> tuple[int | None, int | None]:
    """``(waiting messages, consumers)`` of a queue as RabbitMQ counts them now; ``(None, None)`` if it does not exist."""
    with connection.channel() as channel:
        try:
            _, depth, consumers = channel.queue_declare(queue, passive=True)  # type: ignore[attr-defined]  # kombu's stubs: a bare StdChannel
        except connection.channel_errors:
            return None, None
    return depth, consumers


def unbind(connection: Connection, queue: str, routing_key: str) -> None:
    """Remove one binding of ``queue`` on ``events`` (RabbitMQ: kombu's ``queue_unbind``)."""
    with connection.channel() as channel:
        if is_redis(connection):
            _redis_unbind(channel.client, queue, routing_key)  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
        else:
            Queue(queue, channel=channel).unbind_from(exchange=events_exchange(), routing_key=routing_key)


# -- temporary queues of `events tail` ------------------------------------------------------------
# RabbitMQ removes a tail's exclusive queue with its connection. On Redis the binding is a member
# of the binding set, which has no expiry: a tail keeps a heartbeat key alive while it runs, and
# bindings of tail queues without a heartbeat (a killed tail) are removed by the next declare
# (a worker start, a deploy), tail or `events topology verify --prune`.


def tail_queue_prefix() -> str:
    return settings().queue_prefix + "tail."


def tail_heartbeat_key(queue: str) -> str:
    return f"_event_tasks.tail_alive.{queue}"


def is_tail_queue(queue: str) -> bool:
    return queue.startswith(tail_queue_prefix())


def sweep_tail_bindings(client: redis.Redis) -> list[str]:
    """Remove bindings and lists of tail queues whose tail is gone (Redis). Returns their names."""
    removed = []
    for routing_key, name in redis_bindings(client):
        if is_tail_queue(name) and not client.exists(tail_heartbeat_key(name)):
            _redis_unbind(client, name, routing_key)
            client.delete(name)
            removed.append(name)
    return removed


def broker_kind(url: str) -> str:
    """``"redis"``, ``"amqp"`` or ``"memory"`` (unit tests) for a broker URL; :class:`UnsupportedBroker`
    (a ConfigurationError) otherwise: before kombu loads a transport for it (kombu's Kafka transport
    without confluent-kafka ends in a NameError on import). Redis behind Sentinel (kombu's
    ``sentinel://h1:26379;sentinel://h2:26379`` with the transport option ``master_name``) is ``"redis"``."""
    scheme = (url or "").split("://", 1)[0]
    for kind, schemes in (
        ("redis", ("redis", "rediss", "redis+socket", "sentinel")),
        ("amqp", ("amqp", "amqps", "pyamqp")),
        ("memory", ("memory",)),
    ):
        if scheme in schemes:
            return kind
    raise UnsupportedBroker(shown_url(url))


def shown_url(url: str) -> str:
    """A broker URL (or ``;``-separated failover list) as shown to a person: passwords masked."""
    return ";".join(maybe_sanitize_url(part) if "@" in part else part for part in (url or "").split(";"))


def is_redis(connection: Connection) -> bool:
    """Whether a kombu connection is on Redis: kombu's Redis and Sentinel transports and the
    fabric's own (``brokers.redis.transport``, ``brokers.redis.sentinel``) all say ``driver_type`` redis."""
    return connection.transport.driver_type == "redis"


def subscription_table(connection: Connection) -> list[tuple[str, str]]:
    """``(pattern, queue)`` pairs bound on ``events`` (Redis; RabbitMQ through the management API)."""
    return bindings(connection)
