"""Helpers for the reference consumers' unit tests: event times, and delivery like a worker's."""
from __future__ import annotations

import datetime as dt
from typing import Any

from event_tasks import Event
from event_tasks.handlers import service_handlers
from event_tasks.testing import make_event

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    """An event time ``seconds`` after a fixed origin (tests choose the order explicitly)."""
    return T0 + dt.timedelta(seconds=seconds)


def deliver(service: str, event_type: str, data: dict[str, Any], *, time: dt.datetime,
            key: str | None = None, source: str = "test") -> Event:
    """Build the event and call every handler ``service`` has for its type, as its worker would."""
    event = make_event(event_type, data, key=key, time=time, source=source)
    handlers = service_handlers(service).for_type(event_type)
    assert handlers, f"{service} has no handler for {event_type}"
    for handler in handlers:
        handler.func(event)
    return event
