"""``events schema export``: the catalog as JSON Schema (one per event type) and one AsyncAPI 3 document.

Generated from the catalog's marshmallow schemas with apispec's marshmallow plugin (nested
schemas inlined, ``allow_none`` as a ``null`` type): nothing is written by hand twice.

* ``<out>/schemas/<event type>.json``: JSON Schema (2020-12) of the payload (``data``) a producer
  sends; unknown fields are refused on send (consumers ignore them: see ``catalog``).
* ``<out>/asyncapi.json``: AsyncAPI 3.0: a channel per event type (address = the type, the
  routing key on the topic exchange ``events``), one message per type with the payload schema,
  a ``send`` operation for the owning service and a ``receive`` operation for every service
  whose handlers take the type (as this process sees them: run it in a tooling process that
  installs every service's handlers, e.g. the release step).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marshmallow import fields

from .. import catalog
from ..conf import settings
from ..errors import ExtraMissing
from ..handlers import consuming_services, service_handlers

try:  # the `export` extra; only `events schema export` imports this module
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin
    from apispec.ext.marshmallow.openapi import OpenAPIConverter
except ImportError as exc:
    raise ExtraMissing("events schema export", "apispec", "export", str(exc)) from exc

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _converter() -> OpenAPIConverter:
    # None: inline nested schemas (apispec documents it; its annotation says the resolver returns str)
    plugin = MarshmallowPlugin(schema_name_resolver=lambda schema: None)  # type: ignore[arg-type,return-value]  # see above
    APISpec("event-tasks catalog", "1", "3.1.0", plugins=[plugin])  # binds the plugin's converter
    assert plugin.converter is not None  # (set by APISpec, just above)
    plugin.converter.add_attribute_function(_decimal_as_string)
    return plugin.converter


def _decimal_as_string(
    self: OpenAPIConverter,
    field: fields.Field,
    ret: dict[str, Any],  # Any: the JSON Schema property apispec has built so far (untyped JSON)
    **_: object,
) -> dict[str, object]:
    """``Decimal(as_string=True)`` travels as a string ("12.50"); apispec calls it a number.

    Its range stays as ``x-minimum``/``x-maximum`` (JSON Schema ranges apply to numbers only).
    """
    if not (isinstance(field, fields.Decimal) and field.as_string):
        return {}
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in ret:
            ret["x-" + key] = ret.pop(key)
    nullable = isinstance(ret.get("type"), list) and "null" in ret["type"]
    return {"type": ["string", "null"] if nullable else "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}


def payload_schema(entry: catalog.EventType, converter: OpenAPIConverter | None = None) -> dict[str, object]:
    """The JSON Schema of one type's payload (without ``$schema``: AsyncAPI embeds it as is)."""
    converter = converter or _converter()
    schema = converter.schema2jsonschema(entry.schema())
    return {"title": entry.name, "description": entry.description, **schema}


def json_schemas() -> dict[str, dict[str, object]]:
    """``{event type: JSON Schema document}`` for every type of the catalog."""
    converter = _converter()
    return {
        e.name: {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"{e.name}.json",
            **payload_schema(e, converter),
            "x-owner": e.owner,
            "x-version": e.version,
        }
        for e in catalog.all()
    }


def consumers_by_type() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for service in consuming_services():
        for event_type in service_handlers(service).event_types:
            found.setdefault(event_type, []).append(service)
    return found


def asyncapi(title: str = "event-tasks catalog", version: str = "1.0.0") -> dict[str, object]:
    """One AsyncAPI 3.0 document for the whole catalog (see the module docstring)."""
    converter = _converter()
    conf = settings()
    consumers = consumers_by_type()
    channels: dict[str, object] = {}
    operations: dict[str, object] = {}
    messages: dict[str, object] = {}
    schemas: dict[str, object] = {}
    for entry in catalog.all():
        key = entry.name
        schemas[key] = payload_schema(entry, converter)
        messages[key] = {
            "name": entry.name,
            "title": entry.name,
            "summary": entry.description,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{key}"},
            "x-owner": entry.owner,
        }
        channels[key] = {
            "address": entry.name,
            "description": entry.description,
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "bindingVersion": "0.3.0",
                    "exchange": {"name": conf.exchange, "type": "topic", "durable": True, "autoDelete": False},
                }
            },
        }
        ref = {"$ref": f"#/channels/{key}"}
        message = [{"$ref": f"#/channels/{key}/messages/{key}"}]
        operations[f"{entry.owner}.send.{key}"] = {
            "action": "send",
            "channel": ref,
            "messages": message,
            "summary": f"{entry.owner} publishes {key}",
            "x-service": entry.owner,
        }
        for service in consumers.get(key, []):
            operations[f"{service}.receive.{key}"] = {
                "action": "receive",
                "channel": ref,
                "messages": message,
                "summary": f"{service} consumes {key} from its queue {conf.queue_name(service)}",
                "x-service": service,
                "x-queue": conf.queue_name(service),
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Every event type of the catalog. Each event travels as a Celery task message "
            "(protocol 2, JSON) named after its type, with arguments (envelope, data): the "
            "envelope carries id, type, source, time, specversion and key (CloudEvents names); "
            "the payload described here is `data`. Each consuming service gets its own copy on "
            f"its queue {conf.queue_prefix}<service>.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": schemas, "messages": messages},
    }


def write(out: Path, progress: Callable[[str], object] | None = None) -> list[Path]:
    """Write every JSON Schema and the AsyncAPI document under ``out``; returns the paths written."""
    written = []
    folder = out / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    documents = json_schemas()
    for i, (name, document) in enumerate(documents.items(), 1):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        written.append(path)
        if progress is not None:
            progress(f"[{i}/{len(documents)}] {path}")
    path = out / "asyncapi.json"
    path.write_text(json.dumps(asyncapi(), indent=2) + "\n")
    written.append(path)
    if progress is not None:
        progress(f"AsyncAPI 3.0 document: {path}")
    return written
