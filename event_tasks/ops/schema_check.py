"""Schema evolution within a version: what a catalog change may do, checked against a snapshot.

Compatible within one version (``….v1``): a new event type; a new **optional** field (consumers
that do not know it ignore it). Breaking, so a new version (``….v2``) beside the old one: a field
removed, its type changed, optional → required, a new required field, a nested field that becomes a
list or the reverse. ``python manage.py events schema snapshot`` records the catalog as it is
deployed (commit the file); ``events schema check`` compares the code's catalog with it and names
each breaking change (CI runs it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import NotRequired, TypedDict

from marshmallow import Schema, fields

from .. import catalog


class FieldShape(TypedDict):
    """One field in a snapshot: its class name, whether it is required, and what it nests."""

    type: str
    required: bool
    many: NotRequired[bool]  # Nested
    fields: NotRequired[dict[str, FieldShape]]  # Nested
    items: NotRequired[FieldShape]  # List


class TypeShape(TypedDict):
    """One event type in a snapshot."""

    owner: str
    fields: dict[str, FieldShape]


def describe_schema(schema: Schema) -> dict[str, FieldShape]:
    return {name: describe_field(field) for name, field in sorted(schema.fields.items()) if not field.dump_only}


def describe_field(field: fields.Field) -> FieldShape:
    out: FieldShape = {"type": type(field).__name__, "required": bool(field.required)}
    if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
        out["many"] = bool(field.many)
        out["fields"] = describe_schema(field.schema)
    elif isinstance(field, fields.List):
        out["items"] = describe_field(field.inner)
    return out


def snapshot(package: str | None = None) -> dict[str, TypeShape]:
    """The catalog as data: every event type and the shape of its payload."""
    return {e.name: {"owner": e.owner, "fields": describe_schema(e.schema())} for e in catalog.all(package)}


def write(path: Path, package: str | None = None) -> int:
    data = snapshot(package)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return len(data)


def breaking_changes(old: Mapping[str, TypeShape], new: Mapping[str, TypeShape]) -> list[str]:
    """Every change from ``old`` to ``new`` that a consumer of the same version cannot read."""
    problems: list[str] = []
    for event_type, before in sorted(old.items()):
        after = new.get(event_type)
        if after is None:
            problems.append(f"{event_type}: the event type was removed; keep it until no producer sends it")
            continue
        _compare(event_type, "", before["fields"], after["fields"], problems)
    return problems


def _compare(
    event_type: str, prefix: str, before: Mapping[str, FieldShape], after: Mapping[str, FieldShape], out: list[str]
) -> None:
    hint = "a breaking change needs a new version of the event type (….v2) beside this one"
    for name, old in sorted(before.items()):
        path = f"{prefix}{name}"
        new = after.get(name)
        if new is None:
            out.append(f"{event_type}: field {path!r} was removed; {hint}")
            continue
        if old["type"] != new["type"] or old.get("many") != new.get("many"):
            out.append(f"{event_type}: field {path!r} changed from {old['type']} to {new['type']}; {hint}")
            continue
        if new["required"] and not old["required"]:
            out.append(f"{event_type}: field {path!r} became required; {hint}")
        if "fields" in old:
            _compare(event_type, path + ".", old["fields"], new.get("fields", {}), out)
        if "items" in old and old["items"].get("fields") is not None:
            _compare(event_type, path + "[].", old["items"]["fields"], new.get("items", {}).get("fields", {}), out)
        elif "items" in old and old["items"] != new.get("items"):
            out.append(f"{event_type}: the items of {path!r} changed; {hint}")
    for name, new in sorted(after.items()):
        if name not in before and new["required"]:
            out.append(f"{event_type}: new field {prefix}{name!r} is required (make it optional, or {hint})")
