"""Marshmallow schemas generated from openedx-events signals, and which signals have one.

A signal's schema has one field per key of its ``init_data`` plus ``metadata``, following the
same type rules as openedx-events' Avro schema (``openedx_events.event_bus.avro.schema``): attrs
classes become nested schemas; ``str``/``int``/``float``/``bool`` plain fields; ``List[simple]``
and ``Dict[str, simple]`` lists and dicts; the types openedx-events serializes as strings (opaque
keys, datetimes, UUIDs) are strings that must parse back with openedx-events' own deserializer. An
attribute without a default is required; one with ``default=None`` may be null. A signal that
openedx-events cannot serialize (``KNOWN_UNSERIALIZABLE_SIGNALS``, or its Avro schema fails) has
no schema here either.
"""

# No `from __future__ import annotations`: it would bind the name `annotations`, which this module
# defines (the function below), and type checkers would see the __future__ feature in its place.
import datetime as dt
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence, Set
from functools import cache, lru_cache
from typing import Any, TypedDict, Unpack, get_args, get_origin

import attr
from marshmallow import Schema, ValidationError, fields
from openedx_events.event_bus.avro.custom_serializers import DEFAULT_CUSTOM_SERIALIZERS
from openedx_events.tooling import KNOWN_UNSERIALIZABLE_SIGNALS, OpenEdxPublicSignal, load_all_signals

from ..catalog import EventSchema
from ..codec import Codec, compile_codec
from ..errors import UnsupportedSignal
from .codec import METADATA, serializer

#: Types openedx-events carries as strings, with the function that reads one back.
STRING_TYPES = {s.cls: s.deserialize for s in DEFAULT_CUSTOM_SERIALIZERS}
SIMPLE = {str: fields.String, bool: fields.Boolean, float: fields.Float}


class FieldOptions(TypedDict, total=False):
    """The options every generated field passes on to marshmallow."""

    required: bool
    allow_none: bool


def _parses_with(read: Callable[[str], object], name: str) -> Callable[[str], None]:
    """A validator: ``read(value)`` must not raise. Results are cached per string (parsing an opaque
    key costs about as much as the rest of the payload's validation, and keys repeat)."""

    @lru_cache(maxsize=4096)
    def problem(value: str) -> str | None:
        try:
            read(value)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a validation error
            return f"not a valid {name}: {exc}"
        return None

    def check(value: str) -> None:
        message = problem(value)
        if message is not None:
            raise ValidationError(message)

    return check


# Any: a data type of openedx-events' init_data (a class or a typing alias such as List[str])
def _simple(data_type: Any, **options: Unpack[FieldOptions]) -> fields.Field:
    if data_type is int:
        return fields.Integer(strict=True, **options)
    if data_type in SIMPLE:
        return SIMPLE[data_type](**options)
    raise UnsupportedSignal(f"{data_type!r} in a list or dict")


# Any: a data type of openedx-events' init_data (a class or a typing alias such as List[str])
def field_for(data_type: Any, **options: Unpack[FieldOptions]) -> fields.Field:
    """The marshmallow field of one openedx-events data type."""
    if data_type in STRING_TYPES:
        name = data_type.__name__
        return fields.String(validate=_parses_with(STRING_TYPES[data_type], name), metadata={"format": name}, **options)
    if data_type is int or data_type in SIMPLE:
        return _simple(data_type, **options)
    origin = get_origin(data_type)
    if origin is list:
        args = get_args(data_type)
        if not args:
            raise UnsupportedSignal("a list without an item type")
        return fields.List(_simple(args[0]), **options)
    if origin is dict:
        args = get_args(data_type)
        if not args:
            raise UnsupportedSignal("a dict without key and value types")
        return fields.Dict(keys=fields.String(), values=_simple(args[1]), **options)
    if hasattr(data_type, "__attrs_attrs__"):
        return fields.Nested(schema_for_attrs(data_type), **options)
    raise UnsupportedSignal(f"data type {data_type!r}")


@cache
def schema_for_attrs(cls: type[attr.AttrsInstance]) -> type[Schema]:
    """The schema of one attrs data class (built once per class)."""
    attrs_fields: dict[str, fields.Field] = {}
    for attribute in cls.__attrs_attrs__:
        required = attribute.default is attr.NOTHING
        options: FieldOptions = {"required": required}
        if attribute.default is None:
            options["allow_none"] = True
        attrs_fields[attribute.name] = field_for(attribute.type, **options)
    return EventSchema.from_dict(attrs_fields, name=f"{cls.__name__}Schema")


class MetadataSchema(EventSchema):
    """``EventsMetadata.to_json_data()``: the signal's metadata, as receivers get it."""

    id = fields.String(required=True, validate=_parses_with(uuid.UUID, "UUID"))
    event_type = fields.String(required=True)
    minorversion = fields.Integer(strict=True, required=True)
    source = fields.String(required=True)
    sourcehost = fields.String(required=True)
    time = fields.String(required=True, validate=_parses_with(dt.datetime.fromisoformat, "datetime"))
    sourcelib = fields.List(fields.Integer(strict=True), required=True)


class _MetadataField(fields.Nested):
    """``metadata``, whose ``event_type`` must be the signal's own type.

    Its schema is loaded and dumped by codecs compiled from it (``event_tasks.codec``, built once
    per schema instance), as the catalog's compiled codecs do for plain ``Nested`` fields; whatever
    those cannot decide (an error, ``partial``) goes to marshmallow, which words the errors.
    """

    def __init__(self, event_type: str, **kwargs: Any) -> None:  # Any: Nested's options, passed on as they come
        self.event_type = event_type
        self._codecs: tuple[Schema, Codec | None, Codec | None] | None = None
        super().__init__(MetadataSchema, required=True, **kwargs)

    def _compiled(self) -> tuple[Codec | None, Codec | None]:
        """(load codec, dump codec) of this field's schema instance; None where marshmallow must do it."""
        schema = self.schema
        if self._codecs is None or self._codecs[0] is not schema:
            usable = self.unknown is None or self.unknown == schema.unknown
            self._codecs = (
                schema,
                compile_codec(schema, wire=False) if usable else None,
                compile_codec(schema, wire=True),
            )
        return self._codecs[1], self._codecs[2]

    def _deserialize(
        self,
        value: object,
        attr: str | None,
        data: Mapping[str, object] | None,
        partial: bool | Sequence[str] | Set[str] | None = None,
        **kwargs: object,
    ) -> dict[str, object]:
        load = None if partial else self._compiled()[0]
        done = load(value) if load is not None else None
        loaded = done[0] if done is not None else super()._deserialize(value, attr, data, partial=partial, **kwargs)
        if loaded.get("event_type") != self.event_type:
            raise ValidationError({"event_type": [f"must be {self.event_type!r}"]})
        return loaded

    # Any: Nested._serialize's own signature (the loaded metadata, the object it belongs to); marshmallow's
    # Field and Nested name its first argument differently, so no name satisfies both for mypy
    def _serialize(self, nested_obj: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        dump = self._compiled()[1]
        # dump(load(x)) is dump(x) for a loaded metadata dict (strings, integers, a list of integers)
        done = dump(nested_obj) if dump is not None and nested_obj is not None else None
        if done is not None:
            return done[1]
        return super()._serialize(nested_obj, attr, obj, **kwargs)


@cache
def schema_for(signal: OpenEdxPublicSignal) -> type[Schema]:
    """The payload schema of ``signal`` (:class:`UnsupportedSignal` if openedx-events cannot serialize it)."""
    if signal.event_type in KNOWN_UNSERIALIZABLE_SIGNALS:
        raise UnsupportedSignal(f"{signal.event_type} is in openedx-events' KNOWN_UNSERIALIZABLE_SIGNALS")
    try:
        serializer(signal)
    except Exception as exc:  # noqa: BLE001 - openedx-events raises plain Exception/TypeError
        raise UnsupportedSignal(f"openedx-events cannot serialize {signal.event_type}: {exc}") from None
    if METADATA in signal.init_data:
        raise UnsupportedSignal(f"{signal.event_type} has a data key named {METADATA!r}")
    data_fields = {key: field_for(data_type, required=True) for key, data_type in signal.init_data.items()}
    data_fields[METADATA] = _MetadataField(signal.event_type)
    name = re.sub(r"\W", "_", signal.event_type)
    return EventSchema.from_dict(data_fields, name=f"OpenedxSchema_{name}")


def serializable_signals() -> list[OpenEdxPublicSignal]:
    """Every signal of openedx-events this backend (and openedx-events' serializer) can carry, by type."""
    load_all_signals()
    found = []
    for signal in OpenEdxPublicSignal.all_events():
        try:
            schema_for(signal)
        except UnsupportedSignal:
            continue
        found.append(signal)
    return sorted(found, key=lambda s: s.event_type)


_ANNOTATION = re.compile(r"^# \.\. (event_[a-z_]+): ?(.*)$")


@cache
def annotations(event_type: str) -> dict[str, str]:
    """The ``.. event_*`` annotations openedx-events writes above a signal (description, owner repository …)."""
    signal = OpenEdxPublicSignal.get_signal_by_type(event_type)
    module = next(
        (
            m
            for m in list(sys.modules.values())
            if getattr(m, "__name__", "").startswith("openedx_events.")
            and m.__name__.endswith(".signals")
            and any(v is signal for v in vars(m).values())
        ),
        None,
    )
    if module is None or not getattr(module, "__file__", None):
        return {}
    assert module.__file__ is not None  # checked just above
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    with open(module.__file__, encoding="utf-8") as fh:
        for line in fh:
            match = _ANNOTATION.match(line.rstrip())
            if match:
                last = match.group(1)
                if last == "event_type":
                    current = {}
                    blocks.append(current)
                current[last] = match.group(2).strip()
            elif line.startswith("#   ") and last in current:
                current[last] += " " + line[1:].strip()
            else:
                last = ""
    return next((b for b in blocks if b.get("event_type") == event_type), {})
