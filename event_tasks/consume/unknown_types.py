"""The deploy hold-back: events of a type this worker has no handler for yet.

During a deploy the release step binds the new release's patterns before the old workers are
replaced, so an old worker can take an event only the new release handles. :class:`UnknownTypes`
holds such an event (unacked, outside the prefetch limit) for a while that doubles from 1 s up
to 30 s per sighting in this worker, then puts it back in the queue, so that a worker that knows
the type gets it. An event sent more than ``EVENT_TASKS_UNKNOWN_TYPE_WAIT`` seconds ago (its
envelope's ``time``) is a dead letter ``unknown_type``. Held messages are never acked: if this
worker stops, the broker hands them out again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from kombu.asynchronous.timer import Entry, Timer
from kombu.message import Message

from ..envelope import parse_time
from .refusals import refuse, settle

log = logging.getLogger(__name__)


class UnknownTypes:
    """Held events of unknown types, and when each goes back to the queue (see the module docstring)."""

    FIRST, LONGEST = 1.0, 30.0

    def __init__(self, timer: Timer, service: str, wait: float, changed: Callable[[], None]) -> None:
        self.timer = timer
        self.service = service
        self.wait = wait
        self.changed = changed  # called when the number held changes (the intake's prefetch follows it)
        self.held: dict[int, tuple[Message, Entry]] = {}
        self.sightings: dict[str, int] = {}

    def take(self, name: object, message: Message) -> None:
        """Hold ``message`` (of type ``name``), or dead-letter it once it waited long enough."""
        service = self.service
        age = age_of(message)
        if age is None or age >= self.wait:
            why = (
                "its envelope has no readable time"
                if age is None
                else f"no worker of {service!r} had a handler for it within {self.wait:g} s "
                "(EVENT_TASKS_UNKNOWN_TYPE_WAIT)"
            )
            refuse(
                service, message, "unknown_type", f"service {service!r} has no handler for event type {name!r}: {why}"
            )
            return
        task_id = str(message.headers.get("id", ""))
        if len(self.sightings) > 10_000:
            self.sightings.clear()
        seen = self.sightings.get(task_id, 0)
        self.sightings[task_id] = seen + 1
        delay = min(self.LONGEST, self.FIRST * 2**seen, max(self.wait - age, 0.0) + 0.1)
        log.warning(
            "%s has no handler for %r (event %s, sent %.0f s ago): held %.1f s, then back to the queue "
            "for a worker that knows it",
            service,
            name,
            task_id,
            age,
            delay,
        )
        entry = self.timer.call_after(delay, self.release, (id(message),))
        self.held[id(message)] = (message, entry)
        self.changed()

    def release(self, key: int) -> None:
        held = self.held.pop(key, None)
        if held is not None:
            message = held[0]
            settle(message.requeue, "put back")
            self.changed()

    def clear(self) -> None:
        for _, entry in self.held.values():
            entry.cancel()
        self.held.clear()
        self.sightings.clear()


def age_of(message: Message) -> float | None:
    """Seconds since the event in ``message`` was sent (its envelope's ``time``); None if unreadable."""
    try:
        envelope = message.decode()[0][0]
        sent = parse_time(envelope["time"])
    except Exception:  # noqa: BLE001 - unreadable: not worth waiting for
        return None
    return max(0.0, (dt.datetime.now(dt.UTC) - sent).total_seconds())
