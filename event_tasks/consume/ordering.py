"""Per-key ordering (``@consumer(..., ordered=True)``): one event of a key at a time, in queue order.

The worker's main process takes messages from the service's queue in the order the queue holds
them, which is the order they were sent. With a pool of several processes, retries that go back
to the queue, and redeliveries, that order is lost further on. For the service's ordered event
types the intake hands each message to a :class:`KeyGate` instead of straight to Celery:

* the first message of a key goes on to Celery's task handler (the pool) at once; a later one of
  the same key waits in the gate, unacknowledged, until the one before it is settled
  (acknowledged after it was applied or dead-lettered); other keys go on meanwhile;
* a delivery that fails and may be retried is not sent back to the queue (where the later events
  of its key would overtake it): the task raises :class:`RetryInPlace` with its backoff, and the
  main process keeps the message, counts the attempt in its ``retries`` header and runs it again
  when the backoff is over. A pool process lost under it (killed, past its hard time limit) is
  counted the same way, in the message's own headers, and it runs again at once;
* while it holds a key, a delivery carries :data:`HELD_HEADER` (the later events of its key that
  wait for it), so a dead letter says what it held back;
* nothing of it is written anywhere: every waiting message is still unacknowledged, so after a
  crash or a lost connection the broker hands them all out again, in their queue order, and the
  duplicate marks skip what was already applied. Redis keeps that order for the messages a dead
  worker held (``brokers.redis.qos`` renews their leases in the order they were taken).

What it costs: a held message takes a place in the prefetch window (the intake raises the window
by what the gate holds, up to :data:`HOLD_ROOM`, so other keys keep flowing), and a key's events run one after another,
so one key is never faster than one pool process. Across workers the order holds when the
service's queue has one consumer at a time (docs/ordering.md).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery.exceptions import Reject

from ..brokers.redis.lease import QueueLease

if TYPE_CHECKING:
    from kombu.asynchronous.timer import Timer
    from kombu.message import Message

log = logging.getLogger(__name__)

HELD_HEADER = "x-event-tasks-held"  # {"key", "count", "ids"}: the later events of its key that wait for it
GATE_ATTRIBUTE = "_event_tasks_gate"
REQUEUE_WAIT = 1.0  # seconds before a held delivery Celery wanted back in the queue runs again
HOLD_ROOM = 1000  # at most this many waiting events widen the prefetch window (then the worker stops taking)
SHOWN_IDS = 10  # ids of waiting events a delivery carries in HELD_HEADER


class RetryInPlace(Reject):
    """An ordered delivery failed and is retried where it is: the main process keeps its message
    and runs it again after ``countdown`` seconds (a ``Reject`` with ``requeue``, for Celery)."""

    def __init__(self, reason: str = "", requeue: bool = True, countdown: float = 0.0) -> None:
        super().__init__(reason, requeue)
        self.countdown = float(countdown)
        self.args = (reason, requeue, self.countdown)  # how it crosses from the pool process (pickle of the pool's IPC)


def key_of(body: object) -> str | None:
    """The envelope's ``key`` of a decoded task body ``[args, kwargs, embed]``; None without one."""
    args = body[0] if isinstance(body, list | tuple) and body else None
    envelope = args[0] if isinstance(args, list | tuple) and args else None
    key = envelope.get("key") if isinstance(envelope, dict) else None
    return key if isinstance(key, str) else None


def _event_id(message: Message) -> str:
    envelope = (message.decode()[0] or [{}])[0]
    return str(envelope.get("id")) if isinstance(envelope, dict) else "?"


def gate_of(message: object) -> KeyGate | None:
    """The gate holding ``message``'s key, if it came through one that is still current."""
    entry = getattr(message, GATE_ATTRIBUTE, None)
    if entry is None:
        return None
    gate, _, generation = entry
    return gate if isinstance(gate, KeyGate) and gate.generation == generation else None


class KeyGate:
    """One delivery in flight per key; the rest of the key waits here, in order (module docstring)."""

    def __init__(
        self, timer: Timer, service: str, handler: Callable[[Message], None], on_change: Callable[[], None]
    ) -> None:
        self.timer = timer
        self.service = service
        self.handler = handler
        self.on_change = on_change  # the number held changed (the intake resizes its prefetch window)
        self.keys: dict[str, deque[Message]] = {}
        self.held = 0
        self.generation = 0  # bumped by clear(): callbacks of an older connection's messages do nothing

    def take(self, key: str, message: Message) -> None:
        waiting = self.keys.get(key)
        if waiting is not None:
            waiting.append(message)
            self.held += 1
            self.on_change()
            return
        self.keys[key] = deque()
        self._run(key, message)

    def again(self, message: Message, countdown: float, header: str | None = None) -> bool:
        """Run a held delivery again after ``countdown`` s, its key still held; ``header`` counts why.

        False when the message is not this gate's (the caller settles it as Celery would)."""
        entry = getattr(message, GATE_ATTRIBUTE, None)
        if entry is None or entry[0] is not self or entry[2] != self.generation:
            return False
        key, generation = entry[1], entry[2]
        headers: dict[str, Any] = message.headers  # Any: header values are JSON (kombu's stubs say str)
        if header is not None:
            headers[header] = int(headers.get(header) or 0) + 1

        def rerun() -> None:
            if generation == self.generation and not message.acknowledged:
                self._run(key, message)

        self.timer.call_after(max(0.0, countdown), rerun)
        return True

    def clear(self) -> None:
        """Forget every key (the connection is gone: the broker hands the messages out again)."""
        self.generation += 1
        self.keys.clear()
        self.held = 0

    def _run(self, key: str, message: Message) -> None:
        if getattr(message, GATE_ATTRIBUTE, None) is None:
            self._watch(key, message)
        waiting = self.keys.get(key) or deque()
        headers: dict[str, Any] = message.headers  # Any: as in again()
        if waiting:
            headers[HELD_HEADER] = {
                "key": key,
                "count": len(waiting),
                "ids": [_event_id(m) for m in list(waiting)[:SHOWN_IDS]],
            }
        else:
            headers.pop(HELD_HEADER, None)
        self.handler(message)

    def _watch(self, key: str, message: Message) -> None:
        """Learn when Celery settles the message: its ack and reject calls come through here."""
        generation = self.generation
        ack, reject = message.ack_log_error, message.reject_log_error

        def ack_log_error(logger: Any, errors: Any, multiple: bool = False) -> None:  # Any: as kombu's
            try:
                ack(logger, errors, multiple)
            finally:
                self._settled(key, generation)

        def reject_log_error(logger: Any, errors: Any, requeue: bool = False) -> None:  # Any: as kombu's
            if requeue and self.again(message, REQUEUE_WAIT):
                return  # back in the queue, the later events of its key would overtake it: it stays here
            try:
                reject(logger, errors, requeue)
            finally:
                self._settled(key, generation)

        # kombu's Message has these methods; Celery binds them when it builds a request (strategy)
        message.ack_log_error = ack_log_error  # type: ignore[method-assign]  # per message, on purpose
        message.reject_log_error = reject_log_error  # type: ignore[method-assign]  # per message, on purpose
        setattr(message, GATE_ATTRIBUTE, (self, key, generation))

    def _settled(self, key: str, generation: int) -> None:
        if generation != self.generation:
            return
        waiting = self.keys.get(key)
        if waiting is None:
            return
        if not waiting:
            del self.keys[key]
            return
        following = waiting.popleft()
        self.held -= 1
        self.on_change()
        try:
            self._run(key, following)
        except Exception:  # the handler refused it (Celery logs its own); the key must not stay held
            log.exception("%s: handing a held event of key %r to the pool failed", self.service, key)
            self._settled(key, generation)


def take_lease(
    channel: Any,  # Any: the transport's Redis channel (brokers.redis.transport), untyped in kombu's stubs
    service: str,
    queue: str,
    hostname: str,
    renewal: float,
) -> QueueLease:
    """Redis: one consumer of an ordered service's queue at a time; another worker stands by here."""
    lease = QueueLease(channel.conn_or_acquire, queue, f"{hostname}:{os.getpid()}", 3 * renewal + 1)
    stood = lease.wait(
        on_wait=lambda other: log.warning(
            "%s: %s consumes %s (ordered types: one consumer at a time); this worker stands by", service, other, queue
        )
    )
    if stood > 1:
        log.warning("%s: took over %s after standing by %.1fs", service, queue, stood)
    return lease


def after_predecessors(channel: Any, service: str, queue: str, renewal: float) -> None:  # Any: the Redis channel
    """Redis: the deliveries a dead consumer held come back, in the order taken, before this one takes any."""
    started = time.monotonic()
    stale = 3 * renewal + 1  # a lease not renewed for three restore intervals: its consumer is gone
    left = channel.qos.restore_predecessors(stale, timeout=stale + 2)
    waited = time.monotonic() - started
    if left:
        log.warning(
            "%s: %d deliveries of %s are still held by another live consumer: with two consumers the "
            "events of one key can be applied out of order (docs/ordering.md)",
            service,
            left,
            queue,
        )
    elif waited > 1:
        log.info("%s: waited %.1fs for a dead consumer's deliveries to come back first", service, waited)
