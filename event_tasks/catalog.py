"""The event catalog: every event type, its marshmallow schema, owner and description.

The catalog is one or more installed packages (``EVENT_TASKS_SCHEMAS_PACKAGE``; this repository:
``schemas/``, one module per domain) that every service of a platform shares, the way Open edX
services share openedx-events. Each module declares its types with :func:`event_type`. Tools
read the catalog through :func:`get` and :func:`all`. There is no default catalog: loading it
without the setting raises :class:`~event_tasks.errors.NoCatalog`, so a process that sends or
consumes without one stops at its first event (a worker: at start-up).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import sys
import threading
from collections.abc import Mapping
from typing import TypedDict

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields

from .codec import Codec, compile_codec
from .conf import settings
from .errors import ConfigurationError, EventValidationError, UnknownEventType
from .topics import topic_matches

__all__ = ["EventSchema", "EventType", "all", "event_type", "get", "load", "matching"]

# A hyphen inside a word is allowed: openedx-events has org.openedx.enterprise.subsidy.redemption-reversed.v1.
TYPE_NAME = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+\.v[0-9]+$")
_registry: dict[str, EventType] = {}
_loaded_from: set[str] = set()
_lock = threading.RLock()


class EventSchema(Schema):
    """Base class for event payload schemas: unknown fields are rejected when sending.

    Consumers read with the same schema but ignore fields they do not know (at every nesting
    level): a producer that adds an optional field within a version does not break a consumer
    that has not deployed the new schema yet.
    """

    class Meta:
        unknown = RAISE


@dataclasses.dataclass(frozen=True)
class EventType:
    """One catalog entry."""

    name: str
    schema: type[Schema]
    owner: str
    description: str
    module: str = ""

    @property
    def version(self) -> int:
        return int(self.name.rsplit(".v", 1)[1])

    def encode(self, data: object) -> tuple[dict[str, object], dict[str, object]]:
        """Validate an outgoing payload: ``(loaded, wire)``; :class:`EventValidationError` if invalid."""
        schema = self.schema_instance
        if not isinstance(data, Mapping):
            raise EventValidationError(self.name, {"_schema": [f"data must be a mapping, not {type(data).__name__}"]})
        codec = self._codec("_send_codec", schema, wire=True)
        if codec is not None:
            done = codec(data)
            if done is not None:
                loaded, wire = done
                assert wire is not None  # a codec compiled with wire=True returns the wire form
                return loaded, wire
        try:
            loaded = schema.load(data)
        except ValidationError as exc:
            raise EventValidationError(self.name, _as_dict(exc.messages)) from None
        return loaded, schema.dump(loaded)

    def decode(self, wire: object) -> dict[str, object]:
        """Validate a received payload (unknown fields ignored); :class:`EventValidationError` if invalid."""
        if not isinstance(wire, Mapping):
            raise EventValidationError(self.name, {"_schema": [f"data must be an object, not {type(wire).__name__}"]})
        schema = self.receive_schema_instance
        codec = self._codec("_receive_codec", schema, wire=False)
        if codec is not None:
            done = codec(wire)
            if done is not None:
                return done[0]
        try:
            return schema.load(wire)
        except ValidationError as exc:
            raise EventValidationError(self.name, _as_dict(exc.messages)) from None

    def _codec(self, slot: str, schema: Schema, *, wire: bool) -> Codec | None:
        """The compiled codec of ``schema`` (built once; ``None``: marshmallow does it all)."""
        try:
            return self.__dict__[slot]
        except KeyError:
            codec = compile_codec(schema, wire=wire) if settings().compiled_codecs else None
            object.__setattr__(self, slot, codec)
            return codec

    @property
    def schema_instance(self) -> Schema:
        """One shared instance, built once (marshmallow schemas are reusable)."""
        inst = self.__dict__.get("_instance")
        if inst is None:
            inst = self.schema()
            object.__setattr__(self, "_instance", inst)
        return inst

    @property
    def receive_schema_instance(self) -> Schema:
        """The schema as consumers use it: unknown fields ignored at every level (built once)."""
        inst = self.__dict__.get("_receive_instance")
        if inst is None:
            inst = _ignoring_unknown(self.schema())
            object.__setattr__(self, "_receive_instance", inst)
        return inst


def _ignoring_unknown(schema: Schema) -> Schema:
    schema.unknown = EXCLUDE
    for field in schema.fields.values():
        _field_ignoring_unknown(field)
    return schema


def _field_ignoring_unknown(field: fields.Field) -> None:
    if isinstance(field, fields.Nested):
        field.unknown = EXCLUDE
        nested = field.schema
        if isinstance(nested, Schema):
            _ignoring_unknown(nested)
    elif isinstance(field, fields.List):
        _field_ignoring_unknown(field.inner)
    elif isinstance(field, fields.Tuple):
        for inner in field.tuple_fields:
            _field_ignoring_unknown(inner)
    elif isinstance(field, fields.Dict) and field.value_field is not None:
        _field_ignoring_unknown(field.value_field)


def event_type(name: str, *, schema: type[Schema], owner: str, description: str) -> str:
    """Declare an event type in the catalog and return its name (use it as the constant)."""
    if not TYPE_NAME.match(name):
        raise ConfigurationError(
            f"Event type name {name!r} is not of the form org.openedx.<domain>.<subject>.<action>.v<N>"
        )
    if not (isinstance(schema, type) and issubclass(schema, Schema)):
        raise ConfigurationError(f"Event type {name!r}: schema must be a marshmallow Schema class")
    if not owner or not description:
        raise ConfigurationError(f"Event type {name!r} needs an owner (producing service) and a description")
    entry = EventType(
        name=name,
        schema=schema,
        owner=owner,
        description=description.strip(),
        module=sys._getframe(1).f_globals.get("__name__", ""),
    )
    with _lock:
        existing = _registry.get(name)
        if existing is not None and existing.schema is not schema:
            raise ConfigurationError(f"Event type {name!r} is defined twice")
        _registry[name] = entry
    return name


def _packages(package: str | None) -> tuple[str, ...]:
    """``package``, else the configured catalog (:class:`NoCatalog` if the setting is unset)."""
    return (package,) if package else settings().schemas_packages


def load(package: str | None = None) -> None:
    """Import every module of the catalog package(s) (once); called by :func:`get` and :func:`all`."""
    for name in _packages(package):
        if name in _loaded_from:
            continue
        with _lock:
            if name in _loaded_from:
                continue
            try:
                pkg = importlib.import_module(name)
            except ImportError as exc:
                raise ConfigurationError(
                    f"The catalog package {name!r} (EVENT_TASKS_SCHEMAS_PACKAGE) cannot be "
                    f"imported: {exc}. Install it, or point the setting at the right package."
                ) from exc
            for info in pkgutil.iter_modules(getattr(pkg, "__path__", []), prefix=name + "."):
                importlib.import_module(info.name)
            _loaded_from.add(name)


def get(name: str) -> EventType:
    """The catalog entry for ``name``; :class:`UnknownEventType` if there is none (:class:`NoCatalog`
    if no catalog was ever loaded and none is configured: a sender without a catalog)."""
    entry = _registry.get(name)
    if entry is None or not _loaded_from:
        load()
        entry = _registry.get(name)
        if entry is None:
            raise UnknownEventType(name)
    return entry


def all(package: str | None = None) -> list[EventType]:  # noqa: A001 - the public name docs/architecture.md gives it
    """Every event type of the catalog (the configured package(s)), sorted by name."""
    packages = _packages(package)
    load(package)
    prefixes = tuple(p + "." for p in packages)
    return sorted(
        (e for e in _registry.values() if e.module.startswith(prefixes) or e.module in packages), key=lambda e: e.name
    )


def matching(pattern: str, package: str | None = None) -> list[EventType]:
    """The event types a subscription pattern (exact name or topic pattern) selects."""
    return [e for e in all(package) if topic_matches(pattern, e.name)]


class CatalogRow(TypedDict):
    """One event type in :func:`describe`."""

    type: str
    owner: str
    description: str
    fields: list[str]


def describe() -> list[CatalogRow]:
    """A JSON-ready listing (used by ``manage.py events catalog``)."""
    return [
        {"type": e.name, "owner": e.owner, "description": e.description, "fields": sorted(e.schema_instance.fields)}
        for e in all()
    ]


def _as_dict(messages: object) -> dict[str, object]:
    return dict(messages) if isinstance(messages, Mapping) else {"_schema": messages}
