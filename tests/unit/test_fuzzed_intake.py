"""The fuzzed intake without a broker: Hypothesis-drawn raw messages (tests/fuzz.py) through the intake's
``on_message`` (``consume.intake._checked``) and the event task's ``read_event``, and arbitrary Redis queue
items through ``brokers.redis.items``. Whatever arrives: no exception escapes, every message is settled
exactly once (a dead letter with a known reason and a detail, then its ack; or handed on), and what is
handed on is an event or an ``InvalidEvent`` with a known reason; with signatures enforced, only events their
type's owner signed become events, and each other one is refused with the reason its signature earns. (On both
brokers with a real worker: tests/integration/test_fuzzed_intake.py.)"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Queue
from kombu.message import Message
from kombu.serialization import prepare_accept_content
from kombu.transport import virtual
from kombu.transport.virtual import Channel as VirtualChannel

from event_tasks import Event, conf
from event_tasks.brokers.message import encode_body, headers
from event_tasks.brokers.redis.items import deliverable, delivery_tag, read_item, read_message
from event_tasks.consume import intake, refusals
from event_tasks.consume.delivery import read_event
from event_tasks.consume.dispatch import EventTask
from event_tasks.errors import InvalidEvent
from event_tasks.models import DeadLetter
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.fuzz import KEYS, SERVICE, Raw, json_values, raw_messages

REASONS = set(DeadLetter.Reason.values)
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None)


class Channel:
    """What a kombu message settles through: counts acks and requeues."""

    def __init__(self) -> None:
        self.settled: list[str] = []
        self.no_ack_consumers: set[str] = set()

    def basic_ack(self, tag: object, multiple: bool = False) -> None:
        self.settled.append("ack")

    def basic_reject(self, tag: object, requeue: bool = False) -> None:
        self.settled.append("requeue" if requeue else "reject")


class App:
    def __init__(self) -> None:
        task = EventTask.__new__(EventTask)  # only its class and service matter to the intake
        task.service = SERVICE
        self.tasks = {PROBE_CREATED: task}


class Unknown:
    def __init__(self) -> None:
        self.held: list[object] = []

    def take(self, name: object, message: Message) -> None:
        self.held.append(name)


@pytest.fixture(scope="module")
def records():
    found: list[dict[str, object]] = []
    original = refusals.deadletters.record
    refusals.deadletters.record = lambda **row: found.append(row)  # type: ignore[assignment]
    yield found
    refusals.deadletters.record = original  # type: ignore[assignment]


def message_of(raw: Raw, channel: Channel) -> Message:
    message = Message(
        body=raw.body,
        delivery_tag="t",
        content_type=raw.content_type,
        content_encoding=raw.content_encoding,
        headers=raw.headers,  # type: ignore[arg-type]  # None too: kombu keeps what the broker gave
        channel=channel,
    )
    message.accept = prepare_accept_content(["json"])
    return message


@FUZZ
@given(raw=raw_messages())
def test_every_message_is_settled_once_and_nothing_escapes(records, raw):
    records.clear()
    channel, handed, unknown = Channel(), [], Unknown()
    plan = intake.IntakePlan(SERVICE, Queue(f"events.{SERVICE}"), 256 * 1024, 0.0)
    on_message = intake._checked(App(), plan, handed.append, None, unknown)  # type: ignore[arg-type]
    message = message_of(raw, channel)
    on_message(message)
    outcomes = len(records) + len(handed) + len(unknown.held)
    assert outcomes == 1, (records, handed, unknown.held)
    if records:
        assert records[0]["reason"] in REASONS and records[0]["detail"]
        assert channel.settled == ["ack"]
    else:
        assert channel.settled == []  # Celery's handler, or the unknown-type hold, settles it later
    if handed:
        args, kwargs, _ = message.decode()
        try:
            event = read_event(PROBE_CREATED, tuple(args), kwargs)
        except InvalidEvent as exc:
            assert exc.reason in REASONS and exc.detail
            assert not raw.valid
        else:
            assert isinstance(event, Event)
    if raw.valid:
        assert handed, (records, unknown.held)


@pytest.fixture
def enforcing():
    with override_settings(**KEYS.settings(None, "enforce")):
        conf.settings.cache_clear()
        yield
    conf.settings.cache_clear()


# What a valid event whose signature is wrong in one way is refused as (a changed field may also make the
# envelope disagree with its task headers: then an earlier check refuses it first).
REFUSED_AS = {
    "none": {"unsigned"},
    "other_service": {"not_owner"},
    "unknown_key": {"bad_signature"},
    "garbage": {"bad_signature", "invalid_envelope"},
    "changed": {"bad_signature", "not_owner", "invalid_envelope", "unknown_type"},
}


@FUZZ
@given(raw=raw_messages())
def test_with_signatures_enforced_only_what_the_owner_signed_is_an_event(records, enforcing, raw):
    records.clear()
    channel, handed, unknown = Channel(), [], Unknown()
    plan = intake.IntakePlan(SERVICE, Queue(f"events.{SERVICE}"), 256 * 1024, 0.0)
    message = message_of(raw, channel)
    intake._checked(App(), plan, handed.append, None, unknown)(message)  # type: ignore[arg-type]
    assert len(records) + len(handed) + len(unknown.held) == 1, (records, handed, unknown.held)
    if not handed:
        assert not raw.valid_signed, (records, unknown.held)
        return
    args, kwargs, _ = message.decode()
    try:
        event = read_event(PROBE_CREATED, tuple(args), kwargs, SERVICE)
    except InvalidEvent as exc:
        assert exc.reason in REASONS and exc.detail
        assert not raw.valid_signed, exc
        if raw.event_ok:
            assert exc.reason in REFUSED_AS[raw.signature], (raw.signature, exc)
    else:
        assert isinstance(event, Event)
        assert raw.signature == "owner", f"an event signed {raw.signature!r} was applied"
        assert raw.valid_signed or not raw.event_ok


class FakeRedisChannel:
    codecs = VirtualChannel.codecs
    decode_body = VirtualChannel.decode_body


kombu_like = st.fixed_dictionaries(
    {
        "body": json_values | st.text(max_size=40),
        "properties": st.fixed_dictionaries(
            {"delivery_tag": st.text()},
            optional={"body_encoding": st.sampled_from(["base64", "x"]) | json_values, "delivery_info": json_values},
        ),
    },
    optional={"headers": json_values, "content-type": json_values, "content-encoding": json_values},
)


def _one(records, raw: Raw) -> str:
    records.clear()
    channel, handed, unknown = Channel(), [], Unknown()
    plan = intake.IntakePlan(SERVICE, Queue(f"events.{SERVICE}"), 256 * 1024, 0.0)
    intake._checked(App(), plan, handed.append, None, unknown)(message_of(raw, channel))  # type: ignore[arg-type]
    return str(records[0]["reason"]) if records else "handed" if handed else "held"


GOOD_HEADERS = headers(PROBE_CREATED, "e-1", "e-1:alpha", "")
GOOD_BODY = encode_body(
    {"id": "e-1", "type": PROBE_CREATED, "source": "prober", "time": "2026-01-01T00:00:00Z", "specversion": "1.0"},
    {"n": 1},
)[0].encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (Raw(GOOD_BODY, GOOD_HEADERS, "application/json", "utf-8", True), "handed"),
        # found by the fuzzer: kombu passes its raw types by accept=["json"]; Celery's handler then raised
        (Raw(GOOD_BODY, GOOD_HEADERS, "application/data", "binary", False), "content_disallowed"),
        (Raw(GOOD_BODY, GOOD_HEADERS, "application/text", "utf-8", False), "content_disallowed"),
        # found by the fuzzer: JSON that is not [args, kwargs, embed] raised unpacking in the worker's loop
        (Raw(b"42", GOOD_HEADERS, "application/json", "utf-8", False), "invalid_arguments"),
        (Raw(b"[[1, 2], {}]", GOOD_HEADERS, "application/json", "utf-8", False), "invalid_arguments"),
        (Raw(b"[[1, 2], {}, null]", GOOD_HEADERS, "application/json", "utf-8", False), "invalid_arguments"),
        # found by the fuzzer: task headers Celery cannot read (an ETA it rejects without a trace, a bad id)
        (Raw(GOOD_BODY, {**GOOD_HEADERS, "eta": "soon"}, "application/json", "utf-8", False), "not_a_task"),
        (Raw(GOOD_BODY, {**GOOD_HEADERS, "id": 7}, "application/json", "utf-8", False), "not_a_task"),
        (Raw(GOOD_BODY, {**GOOD_HEADERS, "timelimit": "x"}, "application/json", "utf-8", False), "not_a_task"),
        (Raw(GOOD_BODY, {**GOOD_HEADERS, "expires": [1]}, "application/json", "utf-8", False), "not_a_task"),
        (Raw(GOOD_BODY, {**GOOD_HEADERS, "retries": "1"}, "application/json", "utf-8", False), "not_a_task"),
    ],
)
def test_what_the_fuzzer_found_is_a_dead_letter(records, raw, reason):
    assert _one(records, raw) == reason


@pytest.mark.parametrize(
    "message",
    [
        {"body": {"a": 1}, "properties": {"delivery_tag": "t", "body_encoding": "base64"}},  # found by the fuzzer
        {"body": "e30=", "properties": {"delivery_tag": "t", "body_encoding": "rot13"}},
        {"body": "abc", "properties": {"delivery_tag": "t", "body_encoding": "base64"}},
        {"body": "e30=", "headers": [1], "properties": {"delivery_tag": "t", "body_encoding": "base64"}},
        {"body": "e30=", "properties": {"delivery_tag": "t", "delivery_info": "x"}},
    ],
)
def test_a_tagged_redis_item_kombu_cannot_deliver_is_not_deliverable(message):
    assert not deliverable(message)
    assert deliverable({"body": "e30=", "properties": {"delivery_tag": "t", "body_encoding": "base64"}})


junk = st.one_of(
    kombu_like.map(json.dumps),
    st.none(),
    st.binary(max_size=200),
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(["body", "headers", "properties", "content-type"]), json_values).map(json.dumps),
)


@FUZZ
@given(raw=junk)
def test_any_redis_item_is_read_or_none_and_never_raises(raw):
    message = read_message(raw)
    assert message is None or isinstance(message, dict)
    if message is not None:
        tag = delivery_tag(message)
        assert tag is None or isinstance(tag, str)
        if tag is not None and deliverable(message):  # then kombu's Redis channel makes a message of it without raising
            virtual.Message(message, channel=FakeRedisChannel())
    for unacked in (False, True):
        item = read_item(raw, unacked=unacked)
        if item is not None:
            _ = (item.delivery_tag, item.task_id, item.body, item.task_body, item.args, item.envelope)


def test_an_unexpected_failure_of_the_intake_is_a_dead_letter_not_a_stopped_worker(records):
    class Tasks(dict):
        def get(self, name, default=None):
            raise TypeError("unhashable type: 'list'")  # a bug of the intake, as a fuzzed message may find one

    app = App()
    app.tasks = Tasks(app.tasks)
    records.clear()
    channel, handed = Channel(), []
    plan = intake.IntakePlan(SERVICE, Queue(f"events.{SERVICE}"), 256 * 1024, 0.0)
    good = Raw(GOOD_BODY, GOOD_HEADERS, "application/json", "utf-8", True)
    intake._checked(app, plan, handed.append, None, Unknown())(message_of(good, channel))  # type: ignore[arg-type]
    assert [r["reason"] for r in records] == ["internal_error"] and "unhashable" in str(records[0]["detail"])
    assert channel.settled == ["ack"] and handed == []
