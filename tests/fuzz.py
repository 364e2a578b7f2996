"""Hypothesis strategies of raw broker messages for the fuzzed intake (tests/unit/test_fuzzed_intake.py,
tests/integration/test_fuzzed_intake.py): valid event copies, and every part of one broken on its own or
together: the Celery task headers (missing, wrong types), the body (bytes, not JSON, JSON of the wrong shape,
the wrong arity), the envelope (fields missing, extra, of the wrong type, bad times, another specversion), the
signature (none, the owner's, changed after signing, another service's key, a key nobody has, ``sig``/``sigkey``
of any shape), the payload (schema-invalid), the content type and encoding, and the size.

Each drawn message is a :class:`Raw`: what a producer with broker credentials could put straight into a
queue. Event ids come from a counter, not from Hypothesis, so no two valid copies are duplicates of each
other (a duplicate is neither applied nor a dead letter, and the tests count both).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

from hypothesis import strategies as st

from event_tasks.brokers.message import encode_body, headers
from event_tasks.envelope import SPECVERSION
from event_tasks.testing import make_test_keys
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED

SERVICE = "alpha"  # consumes PROBE_CREATED (and PROBE_UPDATED on some workers)
KEYS = make_test_keys("prober", "alpha")  # prober owns the probe types; alpha's key is another service's
SIGNATURES = ["none"] * 3 + ["owner"] * 4 + ["changed", "other_service", "unknown_key", "garbage"]
OWNER_SIGNED: set[str] = set()  # the ids of the drawn messages their type's owner signed
_ids = itertools.count()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
times = st.one_of(
    st.just("2026-01-01T00:00:00Z"),
    st.datetimes().map(lambda t: t.isoformat() + "Z"),
    st.text(max_size=25),
    json_values,
)
types = st.one_of(
    st.just(PROBE_CREATED),
    st.just(PROBE_UPDATED),
    st.just("org.openedx.learning.nope.v1"),
    st.text(max_size=30),
    json_values,
)


@dataclasses.dataclass
class Raw:
    """One message as put into a queue: its body bytes and the AMQP / kombu properties around it."""

    body: bytes
    headers: dict[str, Any] | None
    content_type: str
    content_encoding: str
    valid: bool  # drawn as a valid event copy (it may still be refused: then the test knows it need not be applied)
    signature: str = "none"  # one of SIGNATURES: how the envelope was signed
    event_ok: bool = False  # valid as an event, whatever its signature

    @property
    def valid_signed(self) -> bool:
        """A valid event its type's owner signed: what a consumer that enforces signatures applies."""
        return self.event_ok and self.signature == "owner"


def fresh_id() -> str:
    return f"fz-{next(_ids)}"


@st.composite
def envelopes(draw: st.DrawFn, event_id: str, event_type: str) -> tuple[dict[str, Any], bool]:
    """An envelope, valid or with some fields missing, extra, or wrong; and whether it is still valid."""
    envelope: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "source": "prober",
        "time": "2026-01-01T00:00:00Z",
        "specversion": SPECVERSION,
        "key": None,
    }
    valid = True
    changed = draw(st.lists(st.sampled_from(sorted(envelope)), min_size=1, max_size=3, unique=True))
    for field in changed if draw(st.integers(0, 4)) < 2 else []:
        change = draw(st.sampled_from(["drop", "value"]))
        if change == "drop":
            envelope.pop(field)
        else:
            new = draw(
                {
                    "time": times,
                    "specversion": st.one_of(st.just("9.9"), json_values),
                    "type": types,
                    "key": st.one_of(st.none(), st.text(max_size=10), json_values),
                }.get(field, json_values)
            )
            envelope[field] = new
        valid = False
    if draw(st.integers(0, 9)) == 0:
        envelope[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        valid = False
    return envelope, valid


payloads = st.one_of(
    st.builds(lambda n: {"n": n}, st.integers(0, 10**6)),
    st.builds(lambda n, note: {"n": n, "note": note}, st.integers(0, 10**6), st.text(max_size=30)),
    st.builds(lambda n: {"n": n}, st.one_of(st.integers(max_value=-1), st.text(max_size=5), json_values)),
    json_values,
)


def _valid_payload(data: object) -> bool:
    n = data.get("n") if isinstance(data, dict) else None
    note = data.get("note", "") if isinstance(data, dict) else None
    return type(n) is int and n >= 0 and isinstance(note, str) and set(data) <= {"n", "note"}  # type: ignore[arg-type]


@st.composite
def task_headers(draw: st.DrawFn, event_id: str, event_type: str, argsrepr: str) -> tuple[dict[str, Any] | None, bool]:
    """Celery's task headers, or with ``task``/``id``/``argsrepr``/others missing or of a wrong type."""
    task_id = f"{event_id}:{SERVICE}" if draw(st.booleans()) else event_id  # RabbitMQ copies lack the suffix
    hdrs: dict[str, Any] = headers(event_type, event_id, task_id, argsrepr)
    kind = draw(st.sampled_from(["ok"] * 7 + ["none", "empty", "broken"]))
    if kind == "none":
        return None, False
    if kind == "empty":
        return {}, False
    if kind == "broken":
        for field in draw(st.lists(st.sampled_from(sorted(hdrs)), min_size=1, max_size=4, unique=True)):
            if draw(st.booleans()):
                hdrs.pop(field)
            else:
                hdrs[field] = draw(json_values)
        return hdrs, False
    return hdrs, True


@st.composite
def bodies(draw: st.DrawFn, envelope: dict[str, Any], data: object) -> tuple[bytes, bool]:
    """The protocol-2 body ``[[envelope, data], {}, embed]``, or one of the wrong shape, arity or encoding."""
    kind = draw(st.sampled_from(["ok"] * 15 + ["bytes", "text", "json", "arity", "kwargs", "huge"]))
    if kind == "ok":
        return encode_body(envelope, data)[0].encode(), True  # type: ignore[arg-type]
    if kind == "bytes":
        return draw(st.binary(max_size=200)), False
    if kind == "text":
        return draw(st.text(max_size=100)).encode("utf-8", "surrogatepass"), False
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), False
    if kind == "arity":
        args = draw(st.lists(st.one_of(st.just(envelope), st.just(data), json_values), max_size=4))
        if len(args) == 2 and args[0] is envelope and args[1] is data:
            args.append(None)
        return json.dumps([args, {}, {"callbacks": None}]).encode(), False
    if kind == "kwargs":
        kwargs = draw(st.dictionaries(st.text(min_size=1, max_size=5), json_values, min_size=1, max_size=2))
        return json.dumps([[envelope, data], kwargs, {}]).encode(), False
    return json.dumps([[envelope, {"n": 1, "note": "x" * 300_000}], {}, {}]).encode(), False


CONTENT = [("application/json", "utf-8")] * 18 + [
    ("application/x-python-serialize", "binary"),
    ("application/x-yaml", "utf-8"),
    ("text/plain", "utf-8"),
    ("application/json", "binary"),
    ("application/json", "latin-1"),
    ("application/data", "binary"),
]


@st.composite
def raw_messages(draw: st.DrawFn) -> Raw:
    """One message put straight into the service's queue (see the module docstring)."""
    event_id = fresh_id()
    event_type = draw(st.sampled_from([PROBE_CREATED] * 8 + [PROBE_UPDATED, "org.openedx.learning.nope.v1"]))
    envelope, envelope_ok = draw(envelopes(event_id, event_type))
    data = draw(payloads)
    envelope, signature = draw(signatures(envelope, data))
    if signature == "owner":
        OWNER_SIGNED.add(event_id)
    body, body_ok = draw(bodies(envelope, data))
    hdrs, headers_ok = draw(task_headers(event_id, event_type, "(…)"))
    content_type, encoding = draw(st.sampled_from(CONTENT))
    valid = (
        envelope_ok
        and body_ok
        and headers_ok
        and _valid_payload(data)
        and event_type == PROBE_CREATED
        and (content_type, encoding) == ("application/json", "utf-8")
    )
    return Raw(body, hdrs, content_type, encoding, valid and signature in ("none", "owner"), signature, valid)


def sign_as(
    kind: str, envelope: dict[str, Any], data: object, changed: str = "time", as_source: bool = True
) -> dict[str, Any]:
    """``envelope`` with the signature ``kind`` (one of :data:`SIGNATURES`; ``garbage`` is drawn in
    :func:`signatures`): ``changed`` is the field altered after signing, ``as_source`` whether another
    service's key also names that service as the source."""
    travels = json.loads(json.dumps(data))  # the payload as the consumer reads it
    if kind == "owner":
        return KEYS.sign("prober", envelope, travels)
    if kind == "changed":
        signed = KEYS.sign("prober", envelope, travels)
        signed[changed] = f"{signed.get(changed)}~{next(_ids)}"  # unique: a changed id is no other copy's
        return signed
    if kind == "other_service":
        return KEYS.sign("alpha", {**envelope, "source": "alpha"} if as_source else envelope, travels)
    if kind == "unknown_key":
        return {**KEYS.sign("prober", envelope, travels), "sigkey": "nobody-2026"}
    return envelope


@st.composite
def signatures(draw: st.DrawFn, envelope: dict[str, Any], data: object) -> tuple[dict[str, Any], str]:
    """``envelope`` unsigned, signed by its type's owner (``prober``), changed after the owner signed it,
    signed by another service, by a key nobody has, or with ``sig``/``sigkey`` of any shape."""
    kind = draw(st.sampled_from(SIGNATURES))
    if kind == "garbage":
        sig = draw(st.one_of(st.text(max_size=90), st.binary(max_size=64).map(bytes.hex), json_values))
        return {**envelope, "sig": sig, "sigkey": draw(st.one_of(st.text(max_size=20), json_values))}, kind
    changed = draw(st.sampled_from(["id", "type", "source", "time", "key", "sigkey"]))
    return sign_as(kind, envelope, data, changed, draw(st.booleans())), kind


def signed_examples() -> list[Raw]:
    """One valid event for each way of signing it (unsigned, the owner's, changed after signing, another
    service's key, a key nobody has), so that a run with signatures enforced meets every reason."""
    found = []
    for kind in ("none", "owner", "changed", "other_service", "unknown_key"):
        event_id = fresh_id()
        envelope = {"id": event_id, "type": PROBE_CREATED, "source": "prober", "time": "2026-01-01T00:00:00Z"}
        envelope = sign_as(kind, {**envelope, "specversion": SPECVERSION, "key": None}, {"n": 1}, "time")
        if kind == "owner":
            OWNER_SIGNED.add(event_id)
        body = encode_body(envelope, {"n": 1})[0].encode()  # type: ignore[arg-type]
        hdrs = headers(PROBE_CREATED, event_id, f"{event_id}:{SERVICE}", "(…)")
        found.append(Raw(body, hdrs, "application/json", "utf-8", kind in ("none", "owner"), kind, True))
    return found
