"""Declares one event type per serializable openedx-events signal (see the package docstring)."""

# No `from __future__ import annotations`: it would shadow the imported function `annotations`.
from event_tasks.catalog import event_type
from event_tasks.openedx.schema import annotations, schema_for, serializable_signals

for _signal in serializable_signals():
    _notes = annotations(_signal.event_type)
    event_type(
        _signal.event_type,
        schema=schema_for(_signal),
        owner=_notes.get("event_trigger_repository") or "openedx-events",
        description=_notes.get("event_description") or f"openedx-events signal {_signal.event_type}",
    )
