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
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from typing import Any, TypedDict, get_args, get_origin

import attr
from opaque_keys import OpaqueKey
from openedx_events.data import EventsMetadata
from openedx_events.event_bus.avro.deserializer import DEFAULT_DESERIALIZERS, AvroSignalDeserializer
from openedx_events.event_bus.avro.serializer import DEFAULT_SERIALIZERS, AvroSignalSerializer
from openedx_events.event_bus.avro.types import PYTHON_TYPE_TO_AVRO_MAPPING, SIMPLE_PYTHON_TYPE_TO_AVRO_MAPPING
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


@cache
def signal_for(event_type: str) -> OpenEdxPublicSignal:
    """The ``OpenEdxPublicSignal`` of ``event_type`` (every signals module of openedx-events loaded)."""
    try:
        return OpenEdxPublicSignal.get_signal_by_type(event_type)
    except KeyError:
        load_all_signals()
        return OpenEdxPublicSignal.get_signal_by_type(event_type)


def metadata_to_dict(metadata: EventsMetadata) -> MetadataDict:
    """``EventsMetadata.to_json_data()``, with ``sourcelib`` a list (read directly when every field has its type)."""
    m = metadata
    if (
        type(m) is EventsMetadata
        and type(m.id) is uuid.UUID
        and type(m.time) is dt.datetime
        and type(m.event_type) is str
        and type(m.source) is str
        and type(m.sourcehost) is str
        and type(m.minorversion) is int
        and type(m.sourcelib) is tuple
        and all(type(part) is int for part in m.sourcelib)
    ):
        return {
            "event_type": m.event_type,
            "id": str(m.id),
            "minorversion": m.minorversion,
            "source": m.source,
            "sourcehost": m.sourcehost,
            "time": m.time.isoformat(),
            "sourcelib": list(m.sourcelib),
        }
    data = m.to_json_data()
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
    payload = data_serializer(signal)({key: event_data[key] for key in signal.init_data})
    payload[METADATA] = metadata_to_dict(metadata)
    return payload


# Any: the payload is JSON from the broker
def from_payload(signal: OpenEdxPublicSignal, payload: Mapping[str, Any]) -> tuple[EventsMetadata, dict[str, object]]:
    """``(metadata, kwargs)`` to re-emit the signal with ``send_event_with_custom_metadata``."""
    return metadata_from_dict(payload[METADATA]), data_deserializer(signal)(payload)


# -- openedx-events' to_dict and from_dict, worked out once per signal --------------------------------
#
# ``AvroSignalSerializer.to_dict`` is ``json.loads(json.dumps(data, sort_keys=True, default=…))``
# with ``attr.asdict`` and a value serializer that tries every custom serializer (``issubclass`` on
# the field's type and the value's) for every attribute of every event. ``AvroSignalDeserializer.
# from_dict`` looks each attribute's type up again for every event. Both are plans here, built once
# per data class: which custom serializer, if any, each attribute takes, and how each type is read
# back. The result is openedx-events' own (``tests/unit/test_openedx_codec.py`` compares them on
# generated data of every signal); a value the plan does not cover exactly (a subclass of ``str``, a
# ``None`` in a list, a dict with other keys than strings …) sends the whole event through
# openedx-events' ``to_dict``, which raises or converts as it always did.


class _NotCovered(Exception):
    """Inside a compiled ``to_dict``: this event is for openedx-events' own serializer."""


_NOT_COVERED = _NotCovered()
_JSON_SCALARS = (str, int, float, bool)  # exact types json.loads(json.dumps(x)) gives back unchanged


class DataSerializer:
    """``serializer(signal).to_dict`` of one signal, with its decisions made once per data class."""

    def __init__(self, signal: OpenEdxPublicSignal) -> None:
        original = serializer(signal)
        self.to_dict = original.to_dict
        # the order openedx-events tries them in: its defaults, then the serializer's own
        self.serializers: tuple[tuple[type, Callable[[Any], object]], ...] = tuple(
            {**DEFAULT_SERIALIZERS, **original.serializers}.items()
        )
        self.none = len(self.serializers)
        self.by_value_type: dict[type, int] = {}
        # (name, default is None, index of the first serializer the field's type takes, or none)
        self.plans: dict[type, tuple[tuple[str, bool, int], ...]] = {}
        self.scalars = frozenset(t for t in _JSON_SCALARS if self._value_index(t) == self.none)

    def __call__(self, event_data: Mapping[str, object]) -> dict[str, object]:
        try:
            out: dict[str, object] = {}
            for key, value in event_data.items():
                kind = type(value)
                if value is None or kind in self.scalars:
                    out[key] = value
                elif hasattr(value, "__attrs_attrs__"):
                    out[key] = self._record(value)
                else:
                    raise _NOT_COVERED
            return out
        except _NotCovered:
            return self.to_dict(event_data)  # type: ignore[no-any-return,unused-ignore]  # openedx-events is untyped

    def _value_index(self, kind: type) -> int:
        index = self.by_value_type.get(kind)
        if index is None:
            index = next((i for i, (cls, _) in enumerate(self.serializers) if issubclass(kind, cls)), self.none)
            self.by_value_type[kind] = index
        return index

    def _plan(self, cls: type) -> tuple[tuple[str, bool, int], ...]:
        plan = self.plans.get(cls)
        if plan is None:
            plan = tuple(
                (
                    a.name,
                    a.default is None,
                    next(
                        (
                            i
                            for i, (ext, _) in enumerate(self.serializers)
                            if isinstance(a.type, type) and issubclass(a.type, ext)
                        ),
                        self.none,
                    ),
                )
                for a in attr.fields(cls)
            )
            self.plans[cls] = plan
        return plan

    def _record(self, inst: Any) -> dict[str, object]:  # Any: an attrs instance
        out: dict[str, object] = {}
        scalars = self.scalars
        for name, default_none, field_index in self._plan(type(inst)):
            value = getattr(inst, name)
            if value is None:
                if not default_none:
                    raise _NOT_COVERED  # openedx-events raises its own error
                out[name] = None
                continue
            kind = type(value)
            index = min(field_index, self._value_index(kind))
            if index != self.none:
                value = self.serializers[index][1](value)
                if type(value) not in scalars:
                    raise _NOT_COVERED
                out[name] = value
            elif kind in scalars:
                out[name] = value
            elif getattr(kind, "__attrs_attrs__", None) is not None:
                out[name] = self._record(value)
            elif kind is list or kind is tuple:
                if not all(type(item) in scalars for item in value):
                    raise _NOT_COVERED
                out[name] = list(value)
            elif kind is dict:
                if not all(type(k) is str and type(v) in scalars for k, v in value.items()):
                    raise _NOT_COVERED
                out[name] = dict(value)
            else:
                raise _NOT_COVERED
        return out


@cache
def data_serializer(signal: OpenEdxPublicSignal) -> DataSerializer:
    return DataSerializer(signal)


_Read = Callable[[Any], object]  # Any: a value of the payload (JSON)


class DataDeserializer:
    """``deserializer(signal).from_dict`` of one signal: how each data type is read, worked out once."""

    def __init__(self, signal: OpenEdxPublicSignal) -> None:
        self.deserializers = {**DEFAULT_DESERIALIZERS, **deserializer(signal).deserializers}
        self.readers: dict[object, _Read] = {}
        self.fields = tuple((key, self.reader(data_type)) for key, data_type in signal.init_data.items())

    def __call__(self, record: Mapping[str, Any]) -> dict[str, object]:  # Any: the payload (JSON)
        return {key: read(record[key]) for key, read in self.fields}

    # Any: a data type of openedx-events' init_data (a class or a typing alias such as List[str])
    def reader(self, data_type: Any) -> _Read:
        """What ``_deserialized_avro_record_dict_to_object(data, data_type)`` does, as a function of data."""
        known = self.readers.get(data_type)
        if known is not None:
            return known
        found = self.deserializers.get(data_type)
        origin = get_origin(data_type)
        read: _Read
        if found:
            read = _cached(found) if isinstance(data_type, type) and issubclass(data_type, IMMUTABLE) else found
        elif data_type in PYTHON_TYPE_TO_AVRO_MAPPING:
            read = _same
        elif origin is list or origin is dict:
            args = get_args(data_type)
            if not args:
                read = _raiser(
                    "List without annotation type is not supported. The argument should be a type, for eg., List[int]"
                    if origin is list
                    else "Dict without annotation type is not supported. The argument should be a type, for eg., "
                    "Dict[str, int]"
                )
            elif all(a in SIMPLE_PYTHON_TYPE_TO_AVRO_MAPPING for a in (args[:1] if origin is list else args)):
                read = _same
            else:
                read = _unable(data_type)
        elif hasattr(data_type, "__attrs_attrs__"):
            read = self._record_reader(data_type)
        else:
            read = _unable(data_type)
        self.readers[data_type] = read
        return read

    def _record_reader(self, cls: type) -> _Read:
        plan: list[tuple[str, bool, _Read]] = []

        def read(data: Any) -> object:  # Any: a JSON object of the payload
            transformed = {}
            for name, required, read_value in plan:
                if name in data:
                    value = data[name]
                    if value or required:
                        transformed[name] = read_value(value)
            return cls(**transformed)

        self.readers[cls] = read  # before the attributes: a class that contains itself reads itself
        plan.extend((a.name, a.default is attr.NOTHING, self.reader(a.type)) for a in attr.fields(cls))
        return read


#: Types whose instances cannot change (opaque keys refuse attribute changes): one parsed object per string
#: is handed to every receiver that gets that string, instead of parsing it again for every event.
IMMUTABLE = (OpaqueKey, dt.datetime, uuid.UUID)


def _cached(read: _Read) -> _Read:
    remembered = lru_cache(maxsize=4096)(read)

    def read_cached(value: object) -> object:
        return remembered(value) if type(value) is str else read(value)

    return read_cached


def _same(value: object) -> object:
    return value


def _raiser(message: str) -> _Read:
    def read(value: object) -> object:
        raise TypeError(message)

    return read


def _unable(data_type: object) -> _Read:
    return _raiser(f"Unable to deserialize {data_type} data, please add CustomTypeAvroSerializer for custom data type")


@cache
def data_deserializer(signal: OpenEdxPublicSignal) -> DataDeserializer:
    return DataDeserializer(signal)


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
