"""One decoder of a kombu-on-Redis queue item (``brokers.redis.items``), and its readers: the consume
step (``transport.kombu_message``), ``events status`` (age), ``events tail`` and ``events trace``.
The Lua scripts of the consume step are read from their files; the sweep survives any item."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import redis
from kombu import Connection, Queue
from kombu.utils.json import loads as kombu_loads

from event_tasks.brokers.message import QUEUE_SLOT, SERVICE_SLOT, RedisMessageTemplate, encode_body
from event_tasks.brokers.redis import transport
from event_tasks.brokers.redis.items import QueueItem, delivery_tag, read_item, read_message
from event_tasks.ops import status, tail, trace

TYPE = "org.openedx.learning.probe.created.v1"


def envelope_of(event_id: str, sent: str = "2026-01-01T00:00:00Z") -> dict:
    return {"id": event_id, "type": TYPE, "source": "lms", "time": sent, "specversion": "1.0", "key": None}


def fabric_item(event_id: str = "E1", service: str = "alpha", data: dict | None = None, **envelope) -> bytes:
    """A copy as the fabric's publisher puts it on a service's queue (``fanout.lua`` fills the slots)."""
    env = {**envelope_of(event_id), **envelope}
    body, argsrepr = encode_body(env, data or {"n": 1})
    rendered = RedisMessageTemplate().render(TYPE, event_id, body, argsrepr)
    return rendered.replace(SERVICE_SLOT, service).replace(QUEUE_SLOT, f"events.{service}").encode()


def kombu_item(**changes) -> bytes:
    """A message with the parts changed (``None`` removes one), from a fabric copy."""
    message = json.loads(fabric_item())
    for name, value in changes.items():
        if value is None:
            message.pop(name, None)
        else:
            message[name] = value
    return json.dumps(message).encode()


GARBAGE = [None, b"", b"\xff\xfe\x00garbage", b"{", b"not json", b"\x00\x01\x02", "{'python': 'repr'}"]
NOT_OBJECTS = [b"42", b'"text"', b"null", b"true", b"[1, 2]", b"[]", b'[{"headers": {"id": "E1:alpha"}}]']


@pytest.fixture
def client(fresh_redis_url):
    """A DB number of the private Redis server that no other test uses."""
    return redis.Redis.from_url(fresh_redis_url)


# -- the decoder ---------------------------------------------------------------------------------


def test_a_copy_of_the_fabric_publisher():
    item = read_item(fabric_item("E1", "alpha", {"n": 7}))
    assert isinstance(item, QueueItem)
    assert item.task_id == "E1:alpha" and item.headers["root_id"] == "E1" and item.headers["task"] == TYPE
    assert item.delivery_tag == "E1:alpha"
    assert item.properties["delivery_info"] == {"exchange": "", "routing_key": "events.alpha"}
    assert item.envelope == envelope_of("E1")
    assert item.args == [envelope_of("E1"), {"n": 7}]
    assert item.task_body is not None and item.task_body[1:] == [
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_a_message_of_kombus_own_redis_transport(client, fresh_redis_url):
    """kombu's producer writes the queue item (its JSON, base64 body, delivery tag): read as is."""
    client.delete("items.kombu")
    env = envelope_of("E2")
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    with Connection(fresh_redis_url) as conn:
        conn.Producer().publish(
            [[env, {"n": 2}], {}, embed],
            exchange="",
            routing_key="items.kombu",
            declare=[Queue("items.kombu", routing_key="items.kombu")],
            serializer="json",
            headers={"id": "E2:beta", "root_id": "E2", "task": TYPE, "retries": 0},
        )
    raw = client.lindex("items.kombu", -1)
    item = read_item(raw)
    assert item is not None and item.properties["body_encoding"] == "base64"
    assert item.message == kombu_loads(raw.decode())  # what kombu delivers
    assert isinstance(item.delivery_tag, str) and item.task_id == "E2:beta"
    assert item.envelope == env and item.args == [env, {"n": 2}]
    assert transport.kombu_message(raw) == item.message
    assert status._age_of(raw) is not None and tail._redis_args(raw) == (env, {"n": 2})


def test_the_body_is_decoded_only_when_asked_for():
    item = read_item(fabric_item())
    assert item is not None and not {"body", "task_body", "args", "envelope"} & set(vars(item))
    assert item.envelope is not None and {"body", "task_body", "args", "envelope"} <= set(vars(item))


def test_a_body_that_is_not_base64_encoded():
    """kombu writes the body as it is when ``body_encoding`` is not base64 (or missing)."""
    env = envelope_of("E3")
    text = json.dumps([[env, {"n": 3}], {}, {}])
    for properties in ({"delivery_tag": "t3"}, {"delivery_tag": "t3", "body_encoding": "identity"}):
        item = read_item(kombu_item(body=text, properties=properties))
        assert item is not None and item.body == text and item.envelope == env and item.args == [env, {"n": 3}]
    # marked base64 but not base64, or base64 of bytes that are not UTF-8 text: no body, headers still read
    for body in ("%%% not base64 %%%", base64.b64encode(b"\xff\xfe\xfd").decode()):
        item = read_item(kombu_item(body=body))
        assert item is not None and item.task_id == "E1:alpha"
        assert item.body is None and item.task_body is None and item.args is None and item.envelope is None
    item = read_item(kombu_item(body=base64.b64encode(text.encode()).decode()))  # base64 and the text agree
    assert item is not None and item.envelope == env


@pytest.mark.parametrize("raw", GARBAGE + NOT_OBJECTS)
def test_garbage_and_json_that_is_not_an_object_are_no_item(raw):
    assert read_item(raw) is None and read_message(raw) is None
    assert transport.kombu_message(raw) is None
    assert status._age_of(raw) is None


def test_an_unacked_entry_is_read_only_when_asked_for():
    """kombu's ``unacked`` hash holds ``[message, exchange, routing_key]``: not a queue item."""
    message = json.loads(fabric_item("E4"))
    entry = json.dumps([message, "", "events.alpha"]).encode()
    assert read_item(entry) is None
    item = read_item(entry, unacked=True)
    assert item is not None and item.message == message and item.envelope == envelope_of("E4")
    plain = read_item(fabric_item("E4"), unacked=True)  # an in-flight list holds queue items
    assert plain is not None and plain.message == message
    for raw in (b"[]", b'["text", "", "q"]', b"[[1], 2]", *GARBAGE):
        assert read_item(raw, unacked=True) is None


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"args": [], "kwargs": {}}),  # an object, not [args, kwargs, embed]
        json.dumps("a string"),
        json.dumps([]),
        json.dumps([{"0": {"id": "E1"}}, {}, {}]),  # args not a list
        json.dumps([["not an envelope", {}], {}, {}]),  # the first argument not an object
        json.dumps([[], {}, {}]),  # no arguments
        "not JSON at all",
        "[" * 100_000,  # deeper than Python's JSON decoder goes
    ],
)
def test_a_body_that_is_not_an_events_task_body(body):
    item = read_item(kombu_item(body=base64.b64encode(body.encode()).decode()))
    assert item is not None and item.envelope is None and item.task_id == "E1:alpha"
    assert status._age_of(json.dumps(item.message).encode()) is None
    with pytest.raises(ValueError, match="not an event's task message"):
        tail._redis_args(json.dumps(item.message).encode())


def test_headers_and_properties_that_are_not_objects_read_as_empty():
    for changes in ({"headers": ["id", "E1:alpha"]}, {"headers": "E1:alpha"}, {"headers": None}):
        item = read_item(kombu_item(**changes))
        assert item is not None and item.headers == {} and item.task_id is None
        assert item.envelope == envelope_of("E1")  # the body is base64 all the same: properties say so
    for changes in ({"properties": 5}, {"properties": ["delivery_tag"]}, {"properties": None}):
        item = read_item(kombu_item(**changes))
        assert item is not None and item.properties == {} and item.delivery_tag is None
        assert item.envelope is None  # without body_encoding the body is not decoded from base64
    item = read_item(kombu_item(body=7))
    assert item is not None and item.body is None and item.envelope is None


# -- the consume step ----------------------------------------------------------------------------


def test_the_consume_step_takes_only_messages_with_a_string_delivery_tag():
    raw = fabric_item()
    assert transport.kombu_message(raw) == kombu_loads(raw.decode())
    assert transport.kombu_message(raw.decode()) == kombu_loads(raw.decode())
    for properties in ({}, {"delivery_tag": 5}, {"delivery_tag": None}, {"delivery_tag": ["t"]}):
        assert transport.kombu_message(kombu_item(properties=properties)) is None
        message = read_message(kombu_item(properties=properties))
        assert message is not None and delivery_tag(message) is None
    assert transport.kombu_message(kombu_item(properties={"delivery_tag": "t"}, body=None)) is not None


def test_the_consume_step_decodes_as_kombu_does():
    """kombu's JSON (typed values) and its replacement of bytes that are not UTF-8."""
    raw = kombu_item(
        headers={"id": "E1:alpha", "eta": {"__type__": "datetime", "__value__": "2026-01-01T00:00:00+00:00"}}
    )
    assert transport.kombu_message(raw) == kombu_loads(raw.decode())
    assert transport.kombu_message(raw)["headers"]["eta"].year == 2026
    bad = raw.replace(b'"E1:alpha"', b'"E1:\xff"', 1)
    assert transport.kombu_message(bad) is not None and read_item(bad).task_id == "E1:\ufffd"


def test_a_tracked_item_kombu_cannot_read_fails_the_take_step():
    assert transport.tracked_message(fabric_item()) == kombu_loads(fabric_item().decode())
    with pytest.raises(ValueError, match="not a kombu message"):
        transport.tracked_message(b'{"properties": {"delivery_tag": "t"}, "n": 0x10}')  # cjson reads hex


# -- the operator tools --------------------------------------------------------------------------


def test_status_age_of_the_oldest_waiting_event():
    sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    age = status._age_of(fabric_item(time=sent))
    assert age is not None and 59 <= age <= 70
    assert status._age_of(fabric_item(time="2999-01-01T00:00:00Z")) == 0.0  # clocks apart: never negative
    for bad in ("yesterday", "2026-01-01T00:00:00", 1767225600, None):  # no timezone, not a time
        assert status._age_of(fabric_item(time=bad)) is None


def test_tail_prints_the_envelope_and_data():
    assert tail._redis_args(fabric_item("E5", data={"n": 5})) == (envelope_of("E5"), {"n": 5})
    for raw in (b"garbage", b"42", kombu_item(body="%%%")):
        with pytest.raises(ValueError, match="not an event's task message"):
            tail._redis_args(raw)
    three = kombu_item(body=base64.b64encode(json.dumps([[envelope_of("E1"), {}, "x"], {}, {}]).encode()).decode())
    with pytest.raises(ValueError):
        tail._redis_args(three)


class FakeRedis:
    def __init__(self, lists: dict[str, list[bytes]], hashes: dict[str, dict[str, bytes]]) -> None:
        self.lists, self.hashes = lists, hashes

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        return self.lists.get(key, [])[start : None if end == -1 else end + 1]

    def hvals(self, key: str) -> list[bytes]:
        return list(self.hashes.get(key, {}).values())


def test_trace_finds_a_copy_waiting_or_held():
    eid = str(uuid.uuid4())
    noise = [b"garbage " + eid.encode(), eid.encode(), json.dumps([eid]).encode(), fabric_item("other")]
    waiting = FakeRedis({"events.alpha": [*noise, fabric_item(eid)]}, {})
    state, copy = trace._redis_copy(waiting, "events.alpha", eid)
    assert state == "waiting" and copy is not None and copy.envelope == envelope_of(eid)

    entry = json.dumps([json.loads(fabric_item(eid)), "", "events.alpha"]).encode()
    held = FakeRedis({"events.alpha": noise}, {"unacked:events.alpha": {"t": entry}})
    state, copy = trace._redis_copy(held, "events.alpha", eid)
    assert state == "held" and copy is not None and copy.task_id == f"{eid}:alpha"

    inflight = FakeRedis({transport.inflight_key("events.alpha"): [fabric_item(eid)]}, {})
    assert trace._redis_copy(inflight, "events.alpha", eid)[0] == "held"
    assert trace._redis_copy(FakeRedis({"events.alpha": noise}, {}), "events.alpha", eid) == (None, None)


def test_trace_tells_a_copy_by_its_root_id_or_task_id():
    eid = "E6"
    by_root = read_item(kombu_item(headers={"root_id": eid, "id": "other"}))
    by_task = read_item(kombu_item(headers={"id": f"{eid}:beta"}))
    neither = read_item(kombu_item(headers={"id": f"{eid}x:beta", "root_id": "E66"}))
    no_headers = read_item(kombu_item(headers=None))
    assert by_root and by_task and neither and no_headers
    assert trace._copy_of(by_root, eid) and trace._copy_of(by_task, eid)
    assert not trace._copy_of(neither, eid) and not trace._copy_of(no_headers, eid)


# -- the Lua scripts -----------------------------------------------------------------------------


def test_the_scripts_are_read_from_their_files():
    from importlib import resources

    folder = resources.files("event_tasks.brokers.redis")
    assert folder.joinpath("sweep.lua").read_text() == transport.SWEEP and "cjson.decode" in transport.SWEEP
    assert folder.joinpath("take.lua").read_text() == transport.TAKE and "return {taken, unreadable}" in transport.TAKE


def test_the_sweep_puts_back_any_unclaimed_item_and_leaves_tracked_ones(client):
    """Items that are not kombu messages (a consumer failed to record them as dead letters) go back
    after the grace like any other; they used to make the script fail (indexing a number, a null)."""
    keys = ["q\x06\x16inflight", "unacked:q", "q\x06\x16inflight_seen", "q"]
    sweep = client.register_script(transport.SWEEP)
    odd = [
        b"42",
        b'"x"',
        b"null",
        b"[1]",
        b"garbage{",
        b'{"properties": 5}',
        b'{"properties": {"delivery_tag": {}}}',
        b'{"properties": {"delivery_tag": 7}}',
    ]
    client.delete(*keys)
    client.rpush(keys[0], fabric_item("tracked"), fabric_item("orphan"), *odd)
    client.hset(keys[1], "tracked:alpha", "[...]")
    assert sweep(keys=keys, args=[100, 5]) == 0  # first seen now; the tracked one leaves
    assert client.llen(keys[0]) == 1 + len(odd)
    assert sweep(keys=keys, args=[104, 5]) == 0  # within the grace
    assert sweep(keys=keys, args=[105, 5]) == 1 + len(odd)
    assert client.llen(keys[0]) == 0 and client.exists(keys[2]) == 0
    assert sorted(client.lrange(keys[3], 0, -1)) == sorted([fabric_item("orphan"), *odd])


def test_the_take_removes_held_acks_then_takes_into_unacked(client):
    """One take: the acked deliveries leave unacked and its index first; then the item a BLMOVE
    moved (if any) and up to the window's room from the queue are tracked as kombu's QoS tracks
    them; what is not a kombu message stays in in-flight, returned apart."""
    keys = ["tq", "tq\x06\x16inflight", "unacked:tq", "unacked_index:tq"]
    take = client.register_script(transport.TAKE)
    client.delete(*keys)
    client.hset(keys[2], mapping={"done1": "[...]", "done2": "[...]", "running": "[...]"})
    client.zadd(keys[3], {"done1": 1, "done2": 1, "running": 1})
    items = [fabric_item(f"E{i}") for i in range(3)]
    client.lpush(keys[0], *items, b"garbage{")  # RPOP takes E2 last: garbage is the queue's head
    moved = fabric_item("M")
    client.lpush(keys[1], moved)
    taken, unreadable = take(keys=keys, args=[50, 3, 1, moved, "done1", "done2"])
    assert taken == [moved, items[0], items[1]] and unreadable == []
    assert sorted(client.hkeys(keys[2])) == sorted([b"running", b"M:alpha", b"E0:alpha", b"E1:alpha"])
    # scores: the time taken, 10 µs apart in the order taken (a restore after a crash keeps that order)
    scores = [client.zscore(keys[3], tag) for tag in ("M:alpha", "E0:alpha", "E1:alpha")]
    assert scores == pytest.approx([50, 50.00001, 50.00002]) and scores == sorted(scores)
    assert client.zscore(keys[3], "done1") is None
    assert json.loads(client.hget(keys[2], "E0:alpha")) == [json.loads(items[0]), "", "events.alpha"]
    assert client.lrange(keys[1], 0, -1) == []  # the moved item left in-flight
    # Without a BLMOVE's item (the queue kept the window full): the queue alone.
    taken, unreadable = take(keys=keys, args=[60, 5, 0, "", "M:alpha"])
    assert taken == [items[2]] and unreadable == [b"garbage{"]
    assert client.lrange(keys[1], 0, -1) == [b"garbage{"] and client.llen(keys[0]) == 0
    assert client.hexists(keys[2], "M:alpha") == 0 and client.hexists(keys[2], "E2:alpha") == 1
    assert take(keys=keys, args=[70, 5, 0, ""]) == [[], []]
