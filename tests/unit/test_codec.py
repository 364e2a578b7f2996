"""The compiled codecs (event_tasks.codec) give exactly what marshmallow gives, or leave it to marshmallow.

For every catalog type, hypothesis builds payloads from the schema's own fields: values its
validators accept (regexes, choices, emails, ranges), the same values in forms marshmallow
coerces (a date-time ending in ``Z``, an upper-case UUID, ``"1.5"`` for a two-place amount, a
string for a boolean), wrong types, ``None``, missing and unknown keys. For each one, on the send
side (load + dump, unknown keys refused) and the receive side (load, unknown keys ignored):
either the codec declines (``None``) or its result equals marshmallow's, types included; and
when marshmallow refuses the payload the codec never accepts it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate

from event_tasks import catalog
from event_tasks.codec import compile_codec

TYPES = sorted(t.name for t in catalog.all())
UTC = dt.UTC
ODD = (
    st.none()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=6)
    | st.booleans()
    | st.binary(max_size=4)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 is not 1.0 is not True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dt.datetime):
        return a == b and a.utcoffset() == b.utcoffset() and str(a) == str(b)
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    return a == b


def text_for(field: fields.Field) -> st.SearchStrategy:
    for v in field.validators:
        if isinstance(v, validate.OneOf):
            return st.sampled_from(list(v.choices))
        if isinstance(v, validate.Regexp):
            return st.from_regex(v.regex, fullmatch=True)
        if isinstance(v, validate.Length):
            return st.text(min_size=v.min or 0, max_size=min(v.max or 12, 12))
    return st.text(max_size=12)


def good(field: fields.Field, clean: bool) -> st.SearchStrategy:
    """Values the field accepts; unless ``clean``, also in coercible and refused forms."""

    def pick(canonical: st.SearchStrategy, *others: Any) -> st.SearchStrategy:
        return canonical if clean else canonical.flatmap(lambda c: st.sampled_from([c, *(o(c) for o in others)]))

    if isinstance(field, fields.Nested):
        return payloads(field.schema, clean)
    if isinstance(field, fields.List):
        return st.lists(value(field.inner, clean), min_size=1 if clean else 0, max_size=3)
    if isinstance(field, fields.Email):
        return st.from_regex(r"[a-z]{1,6}@[a-z]{1,6}\.(com|org)", fullmatch=True) | (
            st.emails() if not clean else st.nothing()
        )
    if isinstance(field, fields.Url):
        return pick(st.from_regex(r"https://[a-z]{1,8}\.(com|org)/[a-z0-9-]{0,8}", fullmatch=True), lambda u: "nope")
    if isinstance(field, fields.UUID):
        return pick(st.uuids().map(str), str.upper, lambda u: u.replace("-", ""), uuid.UUID)
    if isinstance(field, fields.DateTime):
        zone = st.just(UTC) if clean else st.none() | st.just(UTC) | st.just(dt.timezone(dt.timedelta(hours=2)))
        return pick(
            st.datetimes(timezones=zone).map(dt.datetime.isoformat),
            lambda m: m.replace("+00:00", "Z"),
            lambda m: m.replace("T", " "),
            dt.datetime.fromisoformat,
        )
    if isinstance(field, fields.Decimal):
        amount = st.decimals(min_value=0 if clean else -5, max_value=10_000, places=2, allow_nan=False)
        return pick(amount.map(lambda d: format(d, "f")), lambda d: d.rstrip("0"), float, lambda d: d + "1")
    if isinstance(field, fields.Boolean):
        return pick(st.booleans(), lambda b: str(b).lower(), int, lambda b: 2)
    if isinstance(field, fields.Integer):
        lo = hi = None
        for v in field.validators:
            if isinstance(v, validate.Range):
                lo, hi = v.min, v.max
        ints = st.integers(min_value=lo if lo is not None else -(10**6), max_value=hi if hi is not None else 10**12)
        return pick(ints, str, float, lambda i: i - 5, lambda i: True)
    if isinstance(field, fields.Float):
        return pick(st.floats(allow_nan=False, allow_infinity=False), int, str, lambda f: float("inf"))
    if isinstance(field, fields.String):
        return pick(text_for(field), lambda t: t.encode(), lambda t: t + "!")
    return ODD


def value(field: fields.Field, clean: bool) -> st.SearchStrategy:
    if clean:
        return good(field, True)
    return st.one_of(good(field, False), good(field, False), good(field, False), ODD)


def payloads(schema: Schema, clean: bool, extra: bool = True) -> st.SearchStrategy:
    """A valid, canonical payload for ``schema``; unless ``clean``, with one thing wrong or odd in it.

    The one thing (a field's value in a coercible or refused form, a missing field, an unknown
    key) sits at any nesting level, so that everything else around it is valid.
    """
    keyed = {(f.data_key or name): f for name, f in schema.load_fields.items()}

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        odd_key = None if clean else draw(st.sampled_from([*keyed, "<missing>", "<unknown>"]))
        out: dict[str, Any] = {}
        for key, field in keyed.items():
            if key != odd_key:
                if field.required or draw(st.integers(0, 4)):
                    out[key] = draw(good(field, True))
                continue
            nested = field.inner if isinstance(field, fields.List) else field
            if isinstance(nested, fields.Nested) and draw(st.booleans()):
                inner = draw(payloads(nested.schema, False, extra))
                out[key] = [inner] if nested is not field else inner
            else:
                out[key] = draw(value(field, False))
        if odd_key == "<missing>":
            out.pop(draw(st.sampled_from(sorted(keyed))), None)
        if odd_key == "<unknown>" and extra:
            out[draw(st.sampled_from(["extra", "z", "certificate_x"]))] = draw(ODD)
        return out

    return build()


def compare(schema: Schema, data: dict[str, Any], *, wire: bool) -> str:
    codec = compile_codec(schema, wire=wire)
    assert codec is not None, f"{type(schema).__name__} is not compiled"
    fast = codec(data)
    try:
        loaded = schema.load(data)
    except ValidationError:
        assert fast is None, f"the codec accepted what marshmallow refuses: {data!r} -> {fast!r}"
        return "refused"
    if fast is None:
        return "declined"
    assert same(fast[0], loaded), (data, fast[0], loaded)
    if wire:
        assert same(fast[1], schema.dump(loaded)), (data, fast[1], schema.dump(loaded))
    return "equal"


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_codec_equals_marshmallow_or_declines(event_type: str, data: st.DataObject) -> None:
    entry = catalog.get(event_type)
    payload = data.draw(st.booleans().flatmap(lambda clean: payloads(entry.schema_instance, clean)))
    compare(entry.schema_instance, payload, wire=True)
    compare(entry.receive_schema_instance, payload, wire=False)


def test_valid_payloads_take_the_compiled_path() -> None:
    """Not a codec that always declines: canonical payloads of every catalog type are decided by it."""
    from bench.payload import CERTIFICATE_CREATED, certificate

    entry = catalog.get(CERTIFICATE_CREATED)
    send = compile_codec(entry.schema_instance, wire=True)
    receive = compile_codec(entry.receive_schema_instance, wire=False)
    decided = send(certificate(3))
    assert decided is not None and decided[1] == entry.schema_instance.dump(entry.schema_instance.load(certificate(3)))
    received = receive({**decided[1], "added_later": 1})
    assert received is not None and received[0] == decided[0]
    compiled = [t for t in catalog.all() if compile_codec(t.schema_instance, wire=True) is not None]
    assert len(compiled) == len(catalog.all())


def test_schemas_with_hooks_or_renames_are_left_to_marshmallow() -> None:
    from marshmallow import post_load, validates_schema

    class WithPostLoad(Schema):
        n = fields.Integer()

        @post_load
        def double(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            return {"n": data["n"] * 2}

    class WithSchemaValidator(Schema):
        n = fields.Integer()

        @validates_schema
        def never(self, data: dict[str, Any], **kwargs: Any) -> None:
            raise ValidationError("no")

    class Renamed(Schema):
        n = fields.Integer(attribute="m")

    for schema in (WithPostLoad(), WithSchemaValidator(), Renamed()):
        assert compile_codec(schema, wire=True) is None

    class Outer(Schema):
        inner = fields.Nested(WithPostLoad)
        when = fields.UUID()

    codec = compile_codec(Outer(), wire=True)  # the hooked nested schema goes through its own load
    assert codec is not None
    u = uuid.uuid4()
    assert codec({"inner": {"n": 2}, "when": str(u)}) == (
        {"inner": {"n": 4}, "when": u},
        {"inner": {"n": 4}, "when": str(u)},
    )
