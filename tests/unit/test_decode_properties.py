"""Property-based: whatever arrives, the consume path gives a clear InvalidEvent or an Event.

Drives the consume path's ``read_event`` (what an event task runs before any handler) with random
arguments, random JSON, wrong types, missing envelope fields and oversize payloads.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_tasks import Event
from event_tasks.consume.delivery import read_event
from event_tasks.envelope import SPECVERSION
from event_tasks.errors import InvalidEvent, PayloadTooLarge
from event_tasks.send.publisher import Publisher

TYPE = "org.openedx.learning.probe.created.v1"
REASONS = {"invalid_arguments", "invalid_envelope", "unsupported_version", "invalid_payload"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

GOOD_ENVELOPE = {
    "id": "e-1",
    "type": TYPE,
    "source": "lms",
    "time": "2026-01-01T00:00:00Z",
    "specversion": SPECVERSION,
    "key": None,
}


def check(args, kwargs=None):
    """Either a valid Event or InvalidEvent with a known reason and a detail; nothing else."""
    try:
        event = read_event(TYPE, tuple(args), kwargs or {})
    except InvalidEvent as exc:
        assert exc.reason in REASONS and exc.detail
        return exc.reason
    assert isinstance(event, Event) and event.type == TYPE
    return "ok"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(json_values, max_size=4), kwargs=st.dictionaries(st.text(max_size=5), json_values, max_size=2))
def test_random_json_arguments(args, kwargs):
    check(args, kwargs)


@settings(max_examples=300)
@given(
    envelope=st.dictionaries(
        st.sampled_from(["id", "type", "source", "time", "specversion", "key", "x"]), json_values, max_size=7
    ),
    data=json_values,
)
def test_random_envelopes_and_payloads(envelope, data):
    check([envelope, data])


@settings(max_examples=200)
@given(
    drop=st.sets(st.sampled_from(sorted(GOOD_ENVELOPE)), min_size=1),
    n=st.one_of(st.integers(min_value=0), st.text(), st.none(), st.floats(allow_nan=False)),
)
def test_missing_envelope_fields_and_wrong_types(drop, n):
    envelope = {k: v for k, v in GOOD_ENVELOPE.items() if k not in drop}
    reason = check([envelope, {"n": n}])
    required = drop - {"key"}
    assert reason == (
        "invalid_envelope"
        if required
        else "ok"
        if isinstance(n, int) and not isinstance(n, bool)
        else "invalid_payload"
    )


@settings(max_examples=100)
@given(raw=st.binary(max_size=200))
def test_random_bytes_are_not_json_or_not_an_event(raw):
    try:
        decoded = json.loads(raw)
    except ValueError:
        return  # the worker's decode step refuses it (dead letter "undecodable"; integration tests)
    check(decoded if isinstance(decoded, list) else [decoded])


def test_oversize_payload_is_refused_on_send():
    from celery import Celery

    from event_tasks.app import install

    app = Celery("t", broker="memory://", set_as_current=False)
    install(app)
    publisher = Publisher(app, "prober")
    try:
        publisher.send(TYPE, {"n": 1, "note": "x" * (300 * 1024)})
    except PayloadTooLarge as exc:
        assert exc.event_type == TYPE and "EVENT_TASKS_MAX_PAYLOAD_BYTES" in str(exc)
    else:
        raise AssertionError("an oversize payload must be refused")
    assert publisher.stats["published"] == 0


def test_the_size_limit_counts_bytes_as_the_consumer_does():
    """200,000 characters of "é" are 400,000 bytes: over the limit on send, as on receipt."""
    from celery import Celery

    from event_tasks.app import install

    app = Celery("t", broker="memory://", set_as_current=False)
    install(app)
    publisher = Publisher(app, "prober")
    try:
        publisher.send(TYPE, {"n": 1, "note": "é" * 200_000})
    except PayloadTooLarge as exc:
        assert exc.size > 400_000
    else:
        raise AssertionError("a payload over the limit in bytes must be refused")
    publisher.send(TYPE, {"n": 2, "note": "é" * 1000})
    assert publisher.stats["published"] == 1
