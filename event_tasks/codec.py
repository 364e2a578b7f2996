"""Compiled payload codecs: marshmallow's load (and dump) of a catalog schema, without its machinery.

Every event is validated twice: ``send_event`` loads and dumps the payload (a valid one goes out
in the schema's wire form), and every consumer loads it again. ``Schema.load``/``dump`` spend
most of their time around the fields (error stores, hook lookups, partial handling, the
``And`` validator rebuilt per call), not in them. :func:`compile_codec` turns a schema into a
plain function that walks its fields directly and returns exactly what marshmallow returns, or
``None`` when it cannot be sure: the caller then asks marshmallow, which stays the authority
for every error message and every case this module does not know.

Exactness: a field of a standard class (``String``, ``Email``, ``Url``, ``Integer``, ``Float``,
``Decimal``, ``Boolean``, ``UUID``, the date and time fields, ``Raw``; exact classes, or a
subclass that sets ``codec_direct = True`` on itself) has its own ``_deserialize``, validators
and ``_serialize`` called directly, as ``Field.deserialize``/``serialize`` would call them (a
``String`` only takes a ``str``: bytes are marshmallow's to decode). ``Nested`` and ``List`` of
such fields are walked the same way. A field of any other class, or with field-level
``pre_load``/``post_load``, goes through its own ``deserialize``/``serialize``. A schema with hooks
(``@pre_load``, ``@validates``, ``@validates_schema``, ``@post_load``, dump hooks),
``attribute=``, dotted names, ``many``/``partial``, different load and dump fields, or an
``unknown`` other than RAISE/EXCLUDE is not compiled at all (a nested one goes through its field's
``deserialize``). ``tests/unit/test_codec.py`` checks the equality on generated payloads of every
catalog type, valid and broken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields
from marshmallow.utils import missing

__all__ = ["Codec", "compile_codec"]

#: ``codec(data) -> (loaded, wire)``; ``wire`` is ``None`` for a decoder; the whole result is
#: ``None`` when marshmallow must decide.
Codec = Callable[[object], "tuple[dict[str, object], dict[str, object] | None] | None"]


class _Undecided(Exception):
    """Inside a codec: this input is for marshmallow to judge."""


_UNDECIDED = _Undecided()
# A field codec: (value, parent data) -> (loaded, wire); raises _Undecided.
_FieldCodec = Callable[[object, "Mapping[str, object] | None"], "tuple[object, object]"]
# A schema walk: data -> (loaded, wire); raises _Undecided.
_Walk = Callable[[object], "tuple[dict[str, object], dict[str, object] | None]"]


def compile_codec(schema: Schema, *, wire: bool) -> Codec | None:
    """A codec equal to ``schema.load`` (and, with ``wire``, ``schema.dump`` of its result).

    ``None`` when the schema uses something this module does not reproduce.
    """
    try:
        walk = _compile_schema(schema, schema.unknown, wire)
    except Exception:  # noqa: BLE001 - e.g. a nested schema named by a string not registered yet: marshmallow's to report
        return None
    if walk is None:
        return None

    def codec(data: object) -> tuple[dict[str, object], dict[str, object] | None] | None:
        try:
            return walk(data)
        except (_Undecided, ValidationError, TypeError, ValueError, ArithmeticError, AttributeError):
            return None

    return codec


def _compile_schema(schema: Schema, unknown: str, wire: bool) -> _Walk | None:
    if any(schema._hooks.values()) or schema.many or schema.partial or unknown not in (RAISE, EXCLUDE):
        return None
    if list(schema.load_fields) != list(schema.dump_fields):
        return None
    plan: list[tuple[str, str, fields.Field, _FieldCodec | None]] = []
    for name, field in schema.load_fields.items():
        if field.attribute is not None or "." in name:
            return None
        key = field.data_key if field.data_key is not None else name
        plan.append((name, key, field, _compile_field(field, key, wire)))
    keys = frozenset(key for _, key, _, _ in plan)
    strict = unknown == RAISE

    def walk(data: object) -> tuple[dict[str, object], dict[str, object] | None]:
        if type(data) is not dict or (strict and not keys.issuperset(data)):
            raise _UNDECIDED
        loaded: dict[str, object] = {}
        out: dict[str, object] | None = {} if wire else None
        later: list[tuple[str, str, fields.Field]] = []  # serialized by the field itself, once loaded is whole
        for name, key, field, code in plan:
            if key in data:
                if code is not None:
                    loaded[name], sent = code(data[key], data)
                    if out is not None:
                        out[key] = sent
                    continue
                # the field's own deserialize, as Schema.load calls it
                loaded[name] = field.deserialize(data[key], key, data)
            elif field.required:
                raise _UNDECIDED  # marshmallow's error to report
            elif field.load_default is not missing:
                default = field.load_default
                loaded[name] = default() if callable(default) else default  # not validated, as in marshmallow
            elif field.dump_default is missing:
                continue
            if out is not None:
                out[key] = missing  # holds the key's place in the field order
                later.append((name, key, field))
        for name, key, field in later:  # the field's own serialize, as Schema.dump calls it
            assert out is not None  # later is only filled when out is
            sent = field.serialize(name, loaded)
            if sent is missing:
                del out[key]
            else:
                out[key] = sent
        return loaded, out

    return walk


def _validators(field: fields.Field) -> Callable[[object], None]:
    """The field's validators, as ``Field._validate`` runs them (each raises ``ValidationError``
    to refuse; marshmallow 4 ignores what they return)."""
    checks = tuple(field.validators)
    if not checks:
        return _no_check

    def check(value: object) -> None:
        for validator in checks:
            validator(value)

    return check


def _no_check(value: object) -> None:
    return None


# Field classes whose _deserialize reads only the value and whose _serialize reads only the value:
# for these the codec calls both directly (Field.deserialize minus its per-call overhead). A field
# class of a catalog can say the same of itself with the class attribute ``codec_direct = True``
# (set on that class itself: a subclass of it is not trusted until it says so too).
_DIRECT = frozenset(
    {
        fields.Raw,
        fields.Email,
        fields.Url,
        fields.Integer,
        fields.Float,
        fields.Decimal,
        fields.Boolean,
        fields.UUID,
        fields.DateTime,
        fields.AwareDateTime,
        fields.NaiveDateTime,
        fields.Date,
        fields.Time,
    }
)


def _compile_field(field: fields.Field, key: str | None, wire: bool) -> _FieldCodec | None:
    """An inline codec for the field, or None: the schema walk calls the field's own methods."""
    if field.pre_load or field.post_load:
        return None
    kind = type(field)
    check = _validators(field)
    code: _FieldCodec | None = None
    if kind is fields.String:

        def string(value: object, data: Mapping[str, object] | None) -> tuple[object, object]:
            if type(value) is not str:
                raise _UNDECIDED  # bytes are decoded by marshmallow
            check(value)
            return value, value

        code = string
    elif kind in _DIRECT or kind.__dict__.get("codec_direct") is True:
        deserialize, serialize = field._deserialize, field._serialize

        def direct(value: object, data: Mapping[str, object] | None) -> tuple[object, object]:
            if value is None:
                raise _UNDECIDED  # allowed or not: handled below / marshmallow's error
            loaded = deserialize(value, key, data)
            check(loaded)
            return loaded, (serialize(loaded, key, None) if wire else None)

        code = direct
    # (isinstance beside ``kind is``: true whenever kind is that exact class; it narrows field for mypy)
    elif (
        kind is fields.Nested
        and isinstance(field, fields.Nested)
        and not field.many
        and not field.schema.many
        and field.only is None
        and not field.exclude
    ):
        nested_schema = field.schema
        walk = _compile_schema(nested_schema, field.unknown or nested_schema.unknown, wire)
        if walk is not None:

            def nested(value: object, data: Mapping[str, object] | None) -> tuple[object, object]:
                loaded, out = walk(value)
                check(loaded)
                return loaded, out

            code = nested
    elif kind is fields.List and isinstance(field, fields.List):
        inner = _compile_field(field.inner, None, wire)
        if inner is not None:

            def sequence(value: object, data: Mapping[str, object] | None) -> tuple[object, object]:
                if type(value) is not list:
                    raise _UNDECIDED
                pairs = [inner(each, None) for each in value]
                loaded = [pair[0] for pair in pairs]
                check(loaded)
                return loaded, ([pair[1] for pair in pairs] if wire else None)

            code = sequence
    if code is None or not field.allow_none:
        return code
    inline = code

    def nullable(value: object, data: Mapping[str, object] | None) -> tuple[object, object]:
        return (None, None) if value is None else inline(value, data)

    return nullable
