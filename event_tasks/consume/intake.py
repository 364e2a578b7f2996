"""The worker's intake of its service's event queue: a consumer bootstep of its own.

When a worker consumes ``events.<service>`` (named in ``-Q``, alone or beside the host's own
queues), this step takes that queue away from Celery's task consumer and consumes it on a
channel of its own, so that:

* on Redis the channel consumes that one queue with the crash-safe atomic step of
  ``redis_transport`` (an ``unacked`` hash, restore schedule and visibility timeout of the
  service's own), whatever else the worker consumes;
* every message is checked before Celery sees it, and what is not a readable event goes to the
  service's dead letters with the reason instead of being dropped: an oversize body, a content
  type other than JSON (pickle never reaches an event task, whatever the host accepts), a body
  that does not decode, a message without task headers, and (RabbitMQ, ``EVENT_TASKS_BROKER_USERS``
  set) one whose ``user_id`` is not its type's owner's broker user (``not_owner``, ``senders``);
* an event of a type this worker has no handler for is held back and put back in the queue
  (``unknown_types``): during a deploy the release step binds new patterns before the old
  workers are replaced, and the copy waits for a worker that knows the type. Only an event still
  unknown ``EVENT_TASKS_UNKNOWN_TYPE_WAIT`` seconds after it was sent is a dead letter;
* each copy gets its own task id ``<event id>:<service>`` (on RabbitMQ the topic exchange hands
  every subscriber the same message);
* fresh deliveries of a batched type wait in a :class:`~event_tasks.consume.batching.Batcher`
  for the rest of their batch;
* deliveries of an ordered type go through a :class:`~event_tasks.consume.ordering.KeyGate`:
  one at a time per key, in queue order;
* the rest is Celery's: the message goes to Celery's own task handler (strategies, pool,
  acks late, ETA, prefetch), exactly as if Celery's task consumer had received it, and runs the
  service's event task (``dispatch``).

What the step does in a worker is fixed at start-up by ``worker.prepare_worker`` in an
:class:`IntakePlan`, kept on the Celery app (:func:`plan_of`).

The host's task consumer, its queues, ids and decode path are left as they are.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from celery import bootsteps
from kombu import Consumer, Queue
from kombu.common import ignore_errors
from kombu.exceptions import ContentDisallowed
from kombu.message import Message
from vine import ppartial

from ..brokers.redis.lease import QueueLease
from ..brokers.topology import declare_quorum_paths, is_quorum, is_redis
from .batching import Batcher
from .delayed_setup import off_the_loop
from .dispatch import EventTask
from .ordering import HOLD_ROOM, KeyGate, after_predecessors, key_of, take_lease
from .refusals import FRAMING_BYTES, header_problem, refuse, refuse_item
from .senders import SenderCheck
from .unknown_types import UnknownTypes

if TYPE_CHECKING:
    from celery import Celery

# Any: Celery's worker consumer (celery.worker.consumer.Consumer), what bootsteps hand a step; its stubs lack
# task_consumer, qos, hub, call_soon_ack, initial_prefetch_count and connection_errors, all used here.
WorkerConsumer: TypeAlias = Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RedisIntake:
    """The Redis consume step's own timings for the event channel (``brokers.redis.transport``)."""

    visibility_timeout: float
    mutex_expire: float
    restore_interval: float = 10.0  # how often a live worker renews the leases of what it holds


@dataclasses.dataclass(frozen=True)
class IntakePlan:
    """What the intake of this worker does, fixed at start-up by ``worker.prepare_worker``."""

    service: str
    queue: Queue
    max_payload_bytes: int
    unknown_type_wait: float
    redis: RedisIntake | None = None  # None: not Redis, or the host chose another transport
    batching: Mapping[str, tuple[int, float]] = dataclasses.field(default_factory=dict)  # batched type: (size, wait)
    senders: SenderCheck | None = None  # RabbitMQ with EVENT_TASKS_BROKER_USERS: the user_id check (senders)
    ordered: frozenset[str] = frozenset()  # event types applied in order per key (ordering)

    @property
    def prefetch_extra(self) -> int:
        """Room in the prefetch window for a batch being filled."""
        return max((size for size, _ in self.batching.values()), default=0)


PLAN_ATTRIBUTE = "_event_tasks_intake"


def set_plan(app: Celery, plan: IntakePlan) -> None:
    """Keep ``plan`` on the worker's Celery app (the bootstep and the control command read it there)."""
    setattr(app, PLAN_ATTRIBUTE, plan)


def plan_of(app: object) -> IntakePlan | None:
    """The intake plan of a worker that consumes its event queue, or None."""
    plan = getattr(app, PLAN_ATTRIBUTE, None)
    return plan if isinstance(plan, IntakePlan) else None


class EventIntake(bootsteps.StartStopStep):
    """Consume the service's event queue on a channel of its own (see the module docstring)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "event-tasks intake"

    def __init__(self, c: WorkerConsumer, **kwargs: object) -> None:
        c.event_intake = None
        self.consumer: Consumer | None = None
        self.parked: Consumer | None = None
        self.channel: Any = None  # Any: kombu's channel; on Redis the transport's own (serve_events)
        self.gate: KeyGate | None = None
        self.lease: QueueLease | None = None
        super().__init__(c, **kwargs)

    def include_if(self, c: WorkerConsumer) -> bool:
        return plan_of(c.app) is not None

    def start(self, c: WorkerConsumer) -> None:
        plan = plan_of(c.app)
        assert plan is not None  # include_if: the step runs only where there is a plan
        queue = plan.queue
        off_the_loop(c)  # Celery's delayed-delivery set-up would block the loop on a dead node's URL
        # Celery's task consumer got the queue from -Q; it is ours to consume.
        task_consumer = c.task_consumer
        if task_consumer is not None and any(q.name == queue.name for q in task_consumer.queues):
            task_consumer.queues = [q for q in task_consumer.queues if q.name != queue.name]
        self.channel = c.connection.channel()
        redis = plan.redis
        if is_redis(c.connection) and redis is not None:
            self.channel.serve_events(
                queue.name,
                on_unreadable=lambda raw: refuse_item(plan.service, queue.name, raw),
                visibility_timeout=redis.visibility_timeout,
                mutex_expire=redis.mutex_expire,
            )
            if plan.ordered:
                # one consumer at a time; a dead one's deliveries come back first (ordering)
                self.channel.lease = self.lease = take_lease(
                    self.channel, plan.service, queue.name, c.hostname, redis.restore_interval
                )
                after_predecessors(self.channel, plan.service, queue.name, redis.restore_interval)
        handler = _task_handler(c)
        self.batcher = Batcher(c.timer, plan.service, handler, plan.batching)
        extra = plan.prefetch_extra  # room for a batch being filled
        applied_prefetch: list[int] = [-1]

        def ours(value: int) -> int:
            # held unknown types and events waiting for their key do not count against the
            # prefetch: other events keep flowing (the gate's share in steps of 32, fewer qos calls)
            gate = min(HOLD_ROOM, -(-self.gate.held // 32) * 32) if self.gate is not None else 0
            return value + extra + len(self.unknown.held) + gate if value else 0  # 0: no limit

        def refresh_prefetch() -> None:
            if self.consumer is not None:
                base = c.qos.value if c.qos is not None else c.initial_prefetch_count
                count = ours(base)
                if count != applied_prefetch[0]:
                    applied_prefetch[0] = count
                    self.consumer.qos(prefetch_count=count, apply_global=False)

        self.gate = KeyGate(c.timer, plan.service, handler, refresh_prefetch) if plan.ordered else None

        self.unknown = UnknownTypes(c.timer, plan.service, plan.unknown_type_wait, refresh_prefetch)
        self.consumer = Consumer(
            self.channel,
            queues=[queue],
            accept=["json"],
            auto_declare=True,
            on_message=_checked(c.app, plan, handler, self.batcher, self.unknown, self.gate),
            on_decode_error=lambda message, exc: refuse(
                plan.service, message, "undecodable", f"{type(exc).__name__}: {exc}"
            ),
        )
        prefetch = c.qos.value if c.qos is not None else c.initial_prefetch_count
        self.consumer.qos(prefetch_count=ours(prefetch), apply_global=False)
        if not is_redis(c.connection) and is_quorum(queue):
            # A message RabbitMQ handed out EVENT_TASKS_QUORUM_DELIVERY_LIMIT times is parked, then a dead letter.
            self.parked = Consumer(
                self.channel,
                queues=[declare_quorum_paths(c.connection, plan.service)],
                auto_declare=False,
                on_message=lambda message: refuse(plan.service, message, "delivery_limit", _death(message)),
            )
        if c.qos is not None:
            # Celery raises the prefetch while it holds ETA (countdown retry) messages: do the
            # same for the event channel, or held retries would stall it.
            host_callback = c.qos.callback

            def both(prefetch_count: int) -> None:
                host_callback(prefetch_count)
                if self.consumer is not None:
                    self.consumer.qos(prefetch_count=ours(prefetch_count), apply_global=False)

            c.qos.callback = both
        # Start consuming when Celery's loop starts its own task consumer, not now: the pool may
        # not run yet (RabbitMQ delivers as soon as a consumer exists).
        intake_consumer = self.consumer
        host_consume = task_consumer.consume

        parked_consumer = self.parked

        def consume(*args: object, **kwargs: object) -> object:
            result = host_consume(*args, **kwargs)
            intake_consumer.consume()
            if parked_consumer is not None:
                parked_consumer.consume()
            return result

        task_consumer.consume = consume
        c.event_intake = self
        log.info("%s consumes %s on its own channel", plan.service, queue.name)

    def stop(self, c: WorkerConsumer) -> None:
        if self.consumer is not None:
            ignore_errors(c, self.consumer.cancel)
        if self.parked is not None:
            ignore_errors(c, self.parked.cancel)
        if getattr(self, "batcher", None) is not None:
            self.batcher.clear()  # held messages are not acked: the broker hands them out again
        if getattr(self, "unknown", None) is not None:
            self.unknown.clear()
        if self.gate is not None:
            self.gate.clear()  # the messages it holds are not acked: the broker hands them out again, in order
        if self.lease is not None:
            ignore_errors(c, self.lease.release)  # a standing-by worker takes over at once
            self.lease = None

    def shutdown(self, c: WorkerConsumer) -> None:
        self.stop(c)
        if self.consumer is not None:
            ignore_errors(c, self.consumer.close)
        if self.channel is not None:
            ignore_errors(c, self.channel.close)
        self.consumer = self.parked = self.channel = None
        c.event_intake = None


def _task_handler(c: WorkerConsumer) -> Callable[[Message], None]:
    """Celery's own task handler, with acks sent at once when they come from the loop's thread.

    Celery defers every ack to the event loop's next turn (``hub.call_soon``). With the intake's
    channel beside task events on RabbitMQ, the turn could wait for a timer (about a second):
    the channel sat at its prefetch limit with the acks queued (measured: 80–210 events/s instead
    of 1,400). Sending an ack from the loop's own thread right away is what Celery does without a
    hub; from any other thread (a thread pool) it still goes through the loop.
    """
    hub = c.hub
    if hub is None:
        return c.create_task_handler()
    defer = c.call_soon_ack

    def call_soon_ack(p: Callable[..., object], *args: object, **kwargs: object) -> object:
        if threading.get_ident() != getattr(hub, "_loop_thread", None):
            return defer(p, *args, **kwargs)
        p = ppartial(p, *args, **kwargs)  # type: ignore[arg-type]  # vine's stubs: a promise; it wraps any callable
        try:
            p()
        except Exception:
            log.exception("acknowledging a delivery failed")
        return p

    c.call_soon_ack = call_soon_ack
    try:
        return c.create_task_handler()
    finally:
        del c.call_soon_ack  # the host's task handler keeps Celery's own


def _checked(
    app: Celery,
    plan: IntakePlan,
    handler: Callable[[Message], None],
    batcher: Batcher | None = None,
    unknown: UnknownTypes | None = None,
    gate: KeyGate | None = None,
) -> Callable[[Message], None]:
    """The intake's ``on_message``: refuse, hold, batch, or hand to Celery (see the module docstring)."""
    service = plan.service
    suffix = ":" + service
    limit = plan.max_payload_bytes + FRAMING_BYTES

    def on_message(message: Message) -> None:
        body = message.body
        if body is not None and len(body) > limit:
            return refuse(
                service,
                message,
                "too_large",
                f"message body of {len(body)} bytes is over EVENT_TASKS_MAX_PAYLOAD_BYTES ({limit - FRAMING_BYTES})",
            )
        headers = message.headers
        if not isinstance(headers, dict) or "task" not in headers:
            return refuse(service, message, "not_a_task", "message has no Celery task headers")
        name = headers.get("task")
        problem = header_problem(headers)
        if problem is not None:
            return refuse(service, message, "not_a_task", f"{problem}: these are not Celery task headers")
        task = app.tasks.get(name) if isinstance(name, str) else None
        if not isinstance(task, EventTask) or task.service != service:
            if unknown is not None:
                return unknown.take(name, message)
            return refuse(
                service, message, "unknown_type", f"service {service!r} has no handler for event type {name!r}"
            )
        if plan.senders is not None:  # who published it, as RabbitMQ vouches (user_id): its type's owner
            wrong_user = plan.senders.problem(task.event_type, (message.properties or {}).get("user_id"))
            if wrong_user is not None:
                return refuse(service, message, "not_owner", wrong_user)
        if message.content_type != JSON:  # kombu lets its raw types (application/data, …/text) past accept
            return refuse(service, message, "content_disallowed", f"content type {message.content_type!r} is not JSON")
        try:
            body = message.decode()  # kombu refuses what is not JSON here (accept=["json"]); cached for Celery
        except Exception as exc:  # noqa: BLE001 - every decode problem is a dead letter, never a crash
            reason = "content_disallowed" if isinstance(exc, ContentDisallowed) else "undecodable"
            return refuse(service, message, reason, f"{type(exc).__name__}: {exc}")
        if not _task_body(body):  # Celery's handler would raise unpacking it, in the worker's loop
            return refuse(service, message, "invalid_arguments", "body is not a Celery task body [args, kwargs, embed]")
        task_id = headers.get("id")
        if isinstance(task_id, str) and not task_id.endswith(suffix):
            headers["id"] = task_id + suffix
        assert isinstance(name, str)  # app.tasks had an event task under this name
        if batcher is not None and batcher.wants(name, message):
            return batcher.add(name, message)
        if gate is not None and name in plan.ordered:
            key = key_of(body)
            if key is not None:  # an event without a key has no order to keep
                return gate.take(key, message)
        return handler(message)

    def guarded(message: Message) -> None:
        """``on_message``, whose unexpected exception would stop the worker (Celery's event loop calls
        it): the message becomes an ``internal_error`` dead letter instead, unless it was settled."""
        try:
            on_message(message)
        except Exception as exc:  # one message must not stop the worker
            log.exception("%s: reading a message failed unexpectedly", service)
            if not message.acknowledged:
                refuse(service, message, "internal_error", f"the intake failed on it: {type(exc).__name__}: {exc}")

    return guarded


JSON = "application/json"


def _task_body(body: object) -> bool:
    """Whether ``body`` has the shape of a protocol-2 task body: ``[args, kwargs, embed]``."""
    return (
        isinstance(body, list | tuple)
        and len(body) == 3
        and isinstance(body[0], list | tuple)
        and isinstance(body[1], dict)
        and isinstance(body[2], dict)
    )


def _death(message: Message) -> str:
    """What RabbitMQ's ``x-death`` header says of a parked message."""
    deaths: object = (message.headers or {}).get("x-death") or [{}]
    last = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    return (
        f"RabbitMQ parked it after {last.get('count', '?')} dead-lettering(s) from {last.get('queue', '?')} "
        f"({last.get('reason', '?')}): handed out more than EVENT_TASKS_QUORUM_DELIVERY_LIMIT times"
    )
