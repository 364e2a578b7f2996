"""The event envelope: what one occurrence looks like, in Python and on the wire.

Attribute names follow CloudEvents (``id``, ``type``, ``source``, ``time``, ``specversion``)
so a reader knows them already. On the wire an event is a Celery task whose two positional
arguments are the envelope (``id``, ``type``, ``source``, ``time``, ``specversion``, ``key``)
and the payload (``data``), both JSON; a signed event's envelope also has ``sigkey`` and ``sig``
(``signing``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .errors import InvalidEvent

SPECVERSION = "1.0"
ENVELOPE_FIELDS = ("id", "type", "source", "time", "specversion", "key", "sigkey", "sig")  # sigkey, sig: signing
REQUIRED_FIELDS = ("id", "type", "source", "time", "specversion")


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One occurrence of an event type, as handlers receive it and ``send_event`` returns it.

    ``data`` is the payload as the type's schema loads it (dates are ``datetime`` objects).
    """

    id: str
    type: str
    source: str
    time: dt.datetime
    key: str | None
    data: Mapping[str, Any]  # Any: the payload as its schema loads it (any field's value: str, datetime, list …)

    def __post_init__(self) -> None:
        if not isinstance(self.data, MappingProxyType):
            object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def envelope(self) -> dict[str, str | None]:
        """The envelope as it travels (JSON-ready, without the payload)."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": format_time(self.time),
            "specversion": SPECVERSION,
            "key": self.key,
        }


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("time has no timezone")
    return parsed


# Any: the broker's JSON, its fields checked here (strings, "time" parsed to a datetime)
def read_envelope(envelope: object, expected_type: str | None = None) -> dict[str, Any]:
    """Check a received envelope; raise :class:`InvalidEvent` saying exactly what is wrong."""
    if not isinstance(envelope, Mapping):
        raise InvalidEvent("invalid_envelope", f"the envelope is a {type(envelope).__name__}, not an object")
    missing = [f for f in REQUIRED_FIELDS if not envelope.get(f)]
    if missing:
        raise InvalidEvent("invalid_envelope", f"missing envelope fields: {', '.join(missing)}")
    unknown = sorted(set(envelope) - set(ENVELOPE_FIELDS))
    if unknown:
        raise InvalidEvent("invalid_envelope", f"unknown envelope fields: {', '.join(unknown)}")
    for name in ("id", "type", "source", "time", "specversion"):
        if not isinstance(envelope[name], str):
            raise InvalidEvent("invalid_envelope", f"envelope field {name!r} must be a string")
    if envelope.get("key") is not None and not isinstance(envelope["key"], str):
        raise InvalidEvent("invalid_envelope", "envelope field 'key' must be a string or null")
    if envelope["specversion"] != SPECVERSION:
        raise InvalidEvent(
            "unsupported_version", f"specversion {envelope['specversion']!r}; this service reads {SPECVERSION!r}"
        )
    if expected_type is not None and envelope["type"] != expected_type:
        raise InvalidEvent(
            "invalid_envelope", f"envelope type {envelope['type']!r} does not match the task name {expected_type!r}"
        )
    try:
        time = parse_time(envelope["time"])
    except ValueError as exc:
        raise InvalidEvent(
            "invalid_envelope", f"envelope time {envelope['time']!r} is not an ISO 8601 UTC time: {exc}"
        ) from None
    return {**envelope, "time": time}
