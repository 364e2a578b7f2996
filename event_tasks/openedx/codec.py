"""Signal data and metadata ⇄ the event payload, with openedx-events' own serializers.

The payload of an openedx-events type is the signal's keyword arguments as a receiver gets them,
as JSON: one entry per key of the signal's ``init_data`` (attrs classes turned into dicts by
openedx-events' ``AvroSignalSerializer.to_dict``: opaque keys, datetimes and UUIDs as strings),
plus ``metadata`` (``EventsMetadata.to_json_data()``: id, event_type, minorversion, source,
sourcehost, time, sourcelib). ``metadata`` is never a data key of a signal: openedx-events passes
the metadata to receivers under that name. The envelope's ``id`` is the metadata id, so a signal
produced twice (two topics, a retried send) is one event to every consumer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any, TypedDict

from openedx_events.data import EventsMetadata
from openedx_events.event_bus.avro.deserializer import AvroSignalDeserializer
from openedx_events.event_bus.avro.serializer import AvroSignalSerializer
from openedx_events.tooling import OpenEdxPublicSignal, load_all_signals

METADATA = "metadata"


class MetadataDict(TypedDict):
    """``EventsMetadata.to_json_data()`` as the payload carries it (``sourcelib`` a list)."""

    id: str
    event_type: str
    minorversion: int
    source: str
    sourcehost: str
    time: str
    sourcelib: list[int]


@cache
def serializer(signal: OpenEdxPublicSignal) -> AvroSignalSerializer:
    """openedx-events' serializer of ``signal`` (its Avro schema is built once)."""
    return AvroSignalSerializer(signal)


@cache
def deserializer(signal: OpenEdxPublicSignal) -> AvroSignalDeserializer:
    return AvroSignalDeserializer(signal)


def signal_for(event_type: str) -> OpenEdxPublicSignal:
    """The ``OpenEdxPublicSignal`` of ``event_type`` (every signals module of openedx-events loaded)."""
    try:
        return OpenEdxPublicSignal.get_signal_by_type(event_type)
    except KeyError:
        load_all_signals()
        return OpenEdxPublicSignal.get_signal_by_type(event_type)


def metadata_to_dict(metadata: EventsMetadata) -> MetadataDict:
    data = metadata.to_json_data()
    data["sourcelib"] = list(data["sourcelib"])
    return data


def metadata_from_dict(data: MetadataDict) -> EventsMetadata:
    # EventsMetadata.from_json (10.5) drops minorversion, so the fields are read here, the same way.
    return EventsMetadata(
        event_type=data["event_type"],
        id=uuid.UUID(data["id"]),
        minorversion=int(data["minorversion"]),
        source=data["source"],
        sourcehost=data["sourcehost"],
        time=dt.datetime.fromisoformat(data["time"]),
        sourcelib=tuple(data["sourcelib"]),
    )


def to_payload(
    signal: OpenEdxPublicSignal, event_data: Mapping[str, object], metadata: EventsMetadata
) -> dict[str, object]:
    """The event payload of one sent signal (JSON-ready)."""
    payload = serializer(signal).to_dict({key: event_data[key] for key in signal.init_data})
    payload[METADATA] = metadata_to_dict(metadata)
    return payload


# Any: the payload is JSON from the broker
def from_payload(signal: OpenEdxPublicSignal, payload: Mapping[str, Any]) -> tuple[EventsMetadata, dict[str, object]]:
    """``(metadata, kwargs)`` to re-emit the signal with ``send_event_with_custom_metadata``."""
    data = {key: value for key, value in payload.items() if key != METADATA}
    return metadata_from_dict(payload[METADATA]), deserializer(signal).from_dict(data)


def event_key(event_data: Mapping[str, object], event_key_field: str | None) -> str | None:
    """The value at ``event_key_field`` (``certificate.course.course_key``) as a string, or None."""
    if not event_key_field:
        return None
    value: object = event_data
    for part in event_key_field.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            return None
    return str(value)
