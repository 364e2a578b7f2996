"""Helpers for the reference consumers' unit tests: event times, and delivery like a worker's."""

from __future__ import annotations

import datetime as dt
from typing import Any

from event_tasks import Event
from event_tasks.testing import run_handlers

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    """An event time ``seconds`` after a fixed origin (tests choose the order explicitly)."""
    return T0 + dt.timedelta(seconds=seconds)


def deliver(
    service: str,
    event_type: str,
    data: dict[str, Any],
    *,
    time: dt.datetime,
    key: str | None = None,
    source: str = "test",
) -> Event:
    """Build the event and run every handler ``service`` has for its type, as its worker would
    (``event_tasks.testing.run_handlers``: duplicate marks, the retry decision); a handler's
    exception is raised again here."""
    outcome = run_handlers(event_type, data, service=service, key=key, time=time, source=source)
    if outcome.failures:
        raise outcome.failures[0].exception
    assert outcome.decision == "done" and outcome.applied, outcome
    return outcome.event
