"""The one rule every reference consumer follows: keep the latest state, ignore older events.

Delivery is at-least-once and unordered (docs/architecture.md, "Delivery contract"), so a handler may see an
event twice, or an older event after a newer one. A projection row therefore stores the envelope
time of the event it reflects (``last_event_time``), and :func:`apply_latest` only writes when the
incoming event is not older than that. Re-applying the same event writes the same values again,
which is harmless: that is what makes the handlers idempotent.

This module is not a service (it is not a package, so it has no queue); it is a helper the
services' handlers share.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction

from event_tasks import Event

__all__ = ["apply_latest", "is_stale"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)


def is_stale(held: Any, event: Event) -> bool:
    """True if the row already reflects a newer event than ``event`` (``held`` is its stored time)."""
    return held is not None and event.time < held


def apply_latest(
    model: type[M],
    event: Event,
    *,
    lookup: Mapping[str, Any],
    values: Mapping[str, Any],
    time_field: str = "last_event_time",
) -> tuple[M, bool]:
    """Create or update the row ``lookup`` with ``values``, unless it holds newer state.

    Returns ``(row, applied)``. The row is locked (``select_for_update``) for the rest of the
    caller's transaction, so the caller can update rows that depend on it (e.g. replace an
    order's lines) only when ``applied`` is true. ``time_field`` lets one row keep separate times
    for field groups that different event types own.
    """
    with transaction.atomic():
        row = model.objects.select_for_update().filter(**lookup).first()
        if row is None:
            try:
                with transaction.atomic():  # a savepoint: losing an insert race is not an error
                    row = model.objects.create(**lookup, **values, **{time_field: event.time})
                return row, True
            except IntegrityError:
                # Another delivery inserted the row meanwhile: update it like any existing row.
                row = model.objects.select_for_update().filter(**lookup).first()
                if row is None:  # not a race: another unique constraint refused the values
                    raise
        if is_stale(getattr(row, time_field), event):
            log.debug(
                "%s %s: ignored, %s holds newer state (%s > %s)",
                event.type,
                event.id,
                model.__name__,
                getattr(row, time_field),
                event.time,
            )
            return row, False
        for name, value in values.items():
            setattr(row, name, value)
        setattr(row, time_field, event.time)
        row.save()
        return row, True
