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
  that does not decode, a message without task headers;
* an event of a type this worker has no handler for is held back and put back in the queue
  (:class:`UnknownTypes`): during a deploy the release step binds new patterns before the old
  workers are replaced, and the copy waits for a worker that knows the type. Only an event still
  unknown ``EVENT_TASKS_UNKNOWN_TYPE_WAIT`` seconds after it was sent is a dead letter;
* each copy gets its own task id ``<event id>:<service>`` (on RabbitMQ the topic exchange hands
  every subscriber the same message);
* the rest is Celery's: the message goes to Celery's own task handler (strategies, pool,
  acks late, ETA, prefetch), exactly as if Celery's task consumer had received it.

The host's task consumer, its queues, ids and decode path are left as they are.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from celery import bootsteps
from kombu import Consumer, Queue
from kombu.common import ignore_errors
from kombu.exceptions import ContentDisallowed
from vine import ppartial

from ..store import deadletters
from .batching import batch_message
from ..envelope import parse_time
from ..brokers.message import LOST_HEADER, TIMEOUTS_HEADER
from ..brokers.topology import is_redis

log = logging.getLogger(__name__)

FRAMING_BYTES = 4096   # the envelope and Celery's framing on top of the payload limit


class EventIntake(bootsteps.StartStopStep):
    """Consume the service's event queue on a channel of its own (see the module docstring)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "event-tasks intake"

    def __init__(self, c: Any, **kwargs: Any) -> None:
        c.event_intake = None
        self.consumer: Consumer | None = None
        self.channel: Any = None
        super().__init__(c, **kwargs)

    def include_if(self, c: Any) -> bool:
        return _plan(c.app) is not None

    def start(self, c: Any) -> None:
        plan = _plan(c.app)
        queue: Queue = plan["queue"]
        # Celery's task consumer got the queue from -Q; it is ours to consume.
        task_consumer = c.task_consumer
        if task_consumer is not None and any(q.name == queue.name for q in task_consumer.queues):
            task_consumer.queues = [q for q in task_consumer.queues if q.name != queue.name]
        self.channel = c.connection.channel()
        if is_redis(c.connection) and plan.get("redis") is not None:
            self.channel.serve_events(queue.name, on_unreadable=lambda raw: _refuse_item(plan, queue.name, raw),
                                      **plan["redis"])
        handler = _task_handler(c)
        self.batcher = Batcher(c.timer, plan["service"], handler, plan.get("batching") or {})
        extra = int(plan.get("prefetch_extra") or 0)   # room for a batch being filled

        def ours(value: int) -> int:
            # held unknown types do not count against the prefetch: known events keep flowing
            return value + extra + len(self.unknown.held) if value else 0   # 0: no limit

        def refresh_prefetch() -> None:
            if self.consumer is not None:
                base = c.qos.value if c.qos is not None else c.initial_prefetch_count
                self.consumer.qos(prefetch_count=ours(base), apply_global=False)

        self.unknown = UnknownTypes(c.timer, plan, refresh_prefetch)
        self.consumer = Consumer(self.channel, queues=[queue], accept=["json"], auto_declare=True,
                                 on_message=_checked(c.app, plan, handler, self.batcher, self.unknown),
                                 on_decode_error=lambda message, exc: _refuse(
                                     plan, message, "undecodable", f"{type(exc).__name__}: {exc}"))
        prefetch = c.qos.value if c.qos is not None else c.initial_prefetch_count
        self.consumer.qos(prefetch_count=ours(prefetch), apply_global=False)
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

        def consume(*args: Any, **kwargs: Any) -> Any:
            result = host_consume(*args, **kwargs)
            intake_consumer.consume()
            return result

        task_consumer.consume = consume
        c.event_intake = self
        log.info("%s consumes %s on its own channel", plan["service"], queue.name)

    def stop(self, c: Any) -> None:
        if self.consumer is not None:
            ignore_errors(c, self.consumer.cancel)
        if getattr(self, "batcher", None) is not None:
            self.batcher.clear()   # held messages are not acked: the broker hands them out again
        if getattr(self, "unknown", None) is not None:
            self.unknown.clear()

    def shutdown(self, c: Any) -> None:
        self.stop(c)
        if self.consumer is not None:
            ignore_errors(c, self.consumer.close)
        if self.channel is not None:
            ignore_errors(c, self.channel.close)
        self.consumer = self.channel = None
        c.event_intake = None


def _task_handler(c: Any) -> Any:
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

    def call_soon_ack(p: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != getattr(hub, "_loop_thread", None):
            return defer(p, *args, **kwargs)
        p = ppartial(p, *args, **kwargs)
        try:
            p()
        except Exception:  # noqa: BLE001 - as Celery's immediate path: log, the worker goes on
            log.exception("acknowledging a delivery failed")
        return p

    c.call_soon_ack = call_soon_ack
    try:
        return c.create_task_handler()
    finally:
        del c.call_soon_ack   # the host's task handler keeps Celery's own


def _plan(app: Any) -> dict[str, Any] | None:
    return getattr(app, "_event_tasks_intake", None)


class Batcher:
    """Holds fresh deliveries of batched types until a batch is full or ``batch_wait`` passed."""

    def __init__(self, timer: Any, service: str, handler: Any, specs: dict[str, tuple[int, float]]) -> None:
        self.timer = timer
        self.service = service
        self.handler = handler
        self.specs = specs
        self.buffers: dict[str, list[Any]] = {}
        self.timers: dict[str, Any] = {}

    def wants(self, name: str, message: Any) -> bool:
        headers = message.headers
        return (name in self.specs and not headers.get("retries") and not headers.get("eta")
                and not (message.delivery_info or {}).get("redelivered") and not headers.get("redelivered")
                and not headers.get(LOST_HEADER) and not headers.get(TIMEOUTS_HEADER))

    def add(self, name: str, message: Any) -> None:
        buffer = self.buffers.setdefault(name, [])
        buffer.append(message)
        size, wait = self.specs[name]
        if len(buffer) >= size:
            self.flush(name)
        elif name not in self.timers:
            self.timers[name] = self.timer.call_after(wait, self.flush, (name, True))

    def flush(self, name: str, from_timer: bool = False) -> None:
        entry = self.timers.pop(name, None)
        if entry is not None and not from_timer:
            entry.cancel()
        buffer = self.buffers.pop(name, [])
        if len(buffer) == 1:
            self.handler(buffer[0])
        elif buffer:
            self.handler(batch_message(name, self.service, buffer))

    def clear(self) -> None:
        for entry in self.timers.values():
            entry.cancel()
        self.timers.clear()
        self.buffers.clear()


class UnknownTypes:
    """Events of types this worker has no handler for: held, then put back in the queue.

    Each is held (unacked, outside the prefetch limit) for a while that doubles from 1 s up to
    30 s per sighting in this worker, then requeued, so that a worker that knows the type (the
    new release) gets it. An event sent more than ``EVENT_TASKS_UNKNOWN_TYPE_WAIT`` seconds ago
    (its envelope's ``time``) is a dead letter ``unknown_type``. Held messages are never acked:
    if this worker stops, the broker hands them out again.
    """

    FIRST, LONGEST = 1.0, 30.0

    def __init__(self, timer: Any, plan: dict[str, Any], changed: Any) -> None:
        self.timer = timer
        self.plan = plan
        self.changed = changed
        self.wait: float = float(plan.get("unknown_type_wait", 900.0))
        self.held: dict[int, tuple[Any, Any]] = {}
        self.sightings: dict[str, int] = {}

    def take(self, name: Any, message: Any) -> None:
        service = self.plan["service"]
        age = _age(message)
        if age is None or age >= self.wait:
            why = ("its envelope has no readable time" if age is None else
                   f"no worker of {service!r} had a handler for it within {self.wait:g} s "
                   f"(EVENT_TASKS_UNKNOWN_TYPE_WAIT)")
            return _refuse(self.plan, message, "unknown_type",
                           f"service {service!r} has no handler for event type {name!r}: {why}")
        task_id = str(message.headers.get("id", ""))
        if len(self.sightings) > 10_000:
            self.sightings.clear()
        seen = self.sightings.get(task_id, 0)
        self.sightings[task_id] = seen + 1
        delay = min(self.LONGEST, self.FIRST * 2 ** seen, max(self.wait - age, 0.0) + 0.1)
        log.warning("%s has no handler for %r (event %s, sent %.0f s ago): held %.1f s, then back to the queue "
                    "for a worker that knows it", service, name, task_id, age, delay)
        entry = self.timer.call_after(delay, self.release, (id(message),))
        self.held[id(message)] = (message, entry)
        self.changed()
        return None

    def release(self, key: int) -> None:
        message, _ = self.held.pop(key, (None, None))
        if message is not None:
            ignore_errors(message, message.requeue)
            self.changed()

    def clear(self) -> None:
        for _, entry in self.held.values():
            entry.cancel()
        self.held.clear()
        self.sightings.clear()


def _age(message: Any) -> float | None:
    """Seconds since the event in ``message`` was sent (its envelope's ``time``); None if unreadable."""
    try:
        envelope = message.decode()[0][0]
        sent = parse_time(envelope["time"])
    except Exception:  # noqa: BLE001 - unreadable: not worth waiting for
        return None
    return max(0.0, (dt.datetime.now(dt.timezone.utc) - sent).total_seconds())


def _checked(app: Any, plan: dict[str, Any], handler: Any, batcher: Batcher | None = None,
             unknown: UnknownTypes | None = None) -> Any:
    service: str = plan["service"]
    suffix = ":" + service
    limit: int = plan["max_payload_bytes"] + FRAMING_BYTES

    def on_message(message: Any) -> Any:
        body = message.body
        if body is not None and len(body) > limit:
            return _refuse(plan, message, "too_large", f"message body of {len(body)} bytes is over "
                                                        f"EVENT_TASKS_MAX_PAYLOAD_BYTES ({limit - FRAMING_BYTES})")
        headers = message.headers
        if not isinstance(headers, dict) or "task" not in headers:
            return _refuse(plan, message, "not_a_task", "message has no Celery task headers")
        name = headers.get("task")
        task = app.tasks.get(name) if isinstance(name, str) else None
        if task is None or getattr(task, "service", None) != service:
            if unknown is not None:
                return unknown.take(name, message)
            return _refuse(plan, message, "unknown_type",
                           f"service {service!r} has no handler for event type {name!r}")
        try:
            message.decode()   # kombu refuses what is not JSON here (accept=["json"]); cached for Celery
        except Exception as exc:  # noqa: BLE001 - every decode problem is a dead letter, never a crash
            reason = "content_disallowed" if isinstance(exc, ContentDisallowed) else "undecodable"
            return _refuse(plan, message, reason, f"{type(exc).__name__}: {exc}")
        task_id = headers.get("id")
        if isinstance(task_id, str) and not task_id.endswith(suffix):
            headers["id"] = task_id + suffix
        if batcher is not None and batcher.wants(name, message):
            return batcher.add(name, message)
        return handler(message)

    return on_message


def _refuse_item(plan: dict[str, Any], queue: str, raw: bytes) -> bool:
    """A Redis queue item that is not a kombu message at all: a dead letter ``undecodable``.
    Returns whether it was recorded (if not, the transport leaves it to come back later)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        deadletters.record(service=plan["service"], reason="undecodable",
                           detail=f"an item of {queue} is not a kombu message (JSON with a delivery tag)",
                           raw={"body": text[:FRAMING_BYTES] + ("…(cut)" if len(text) > FRAMING_BYTES else "")})
    except Exception:  # noqa: BLE001 - the worker goes on; the item is not lost
        log.exception("could not store the dead letter of an unreadable item of %s; it goes back later", queue)
        return False
    return True


def _refuse(plan: dict[str, Any], message: Any, reason: str, detail: str) -> None:
    """Store a message that is not a readable event in the dead letters, then acknowledge it.

    If the dead letter cannot be stored (database down), the message goes back to the queue
    instead: nothing is acknowledged before it is recorded somewhere.
    """
    headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
    task_id = str(headers.get("id", "") or "")
    raw = deadletters.message_raw(message)
    if reason == "too_large":
        raw["body"] = raw["body"][:FRAMING_BYTES] + "…(cut)"
    try:
        deadletters.record(service=plan["service"], reason=reason, detail=detail,
                           event_id=deadletters.event_id_of({}, task_id),
                           event_type=str(headers.get("task", "") or ""), task_id=task_id, raw=raw)
    except Exception:  # noqa: BLE001 - the worker goes on; the message is not lost
        log.exception("could not store dead letter (%s: %s) for message %r; it goes back to the queue",
                      reason, detail, headers)
        ignore_errors(message, message.requeue)
        return None
    ignore_errors(message, message.ack)
    return None
