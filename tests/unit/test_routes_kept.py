"""The publish script keeps each type's queues beside the binding set and notices when the set
changed: a binding added or removed by any client, a change made through the fabric's tools,
and (after the routes' age limit) one replaced by a client that is not ours."""

import time

import pytest
import redis

from event_tasks.brokers.redis.fanout import FANOUT_LUA, script_args
from event_tasks.testing import wait_until

TABLE, ROUTES = "_kombu.binding.events", "_event_tasks.routes.events"
TYPE = "org.example.thing.happened.v1"


def member(pattern: str, queue: str) -> str:
    return f"{pattern}\x06\x16\x06\x16{queue}"


@pytest.fixture
def send(redis_server):
    client = redis.Redis(port=redis_server.port, db=14)
    client.flushdb()
    script = client.register_script(FANOUT_LUA)

    def send(event_type: str = TYPE, max_age_us: int = 60_000_000) -> list[str]:
        """Publish one event; the queues that got a copy (each list emptied again)."""
        args = ["events.", "", str(max_age_us), ""]
        script_args(args, event_type, "\x01\x02", ["m-", "-", ""])
        script(keys=[TABLE, ROUTES], args=args)
        got = []
        for key in client.keys("events.*"):
            got += [key.decode()] * client.llen(key)
            client.delete(key)
        return sorted(got)

    send.client = client  # type: ignore[attr-defined]
    yield send
    client.flushdb()


def test_routes_are_kept_and_used_while_the_table_is_the_same(send):
    client = send.client
    client.sadd(TABLE, member(TYPE, "events.a"), member("org.example.#", "events.b"), member("x.y", "events.c"))
    assert send() == ["events.a", "events.b"]
    kept = client.hget(ROUTES, TYPE).split(b"\0")
    assert sorted(zip(kept[::2], kept[1::2])) == [(b"events.a", b"a"), (b"events.b", b"b")]
    # the kept routes are what the next send goes by: a route planted there is followed
    client.hset(ROUTES, TYPE, "events.z\0z")
    assert send() == ["events.z"]


def test_a_binding_added_or_removed_by_any_client_is_seen_by_the_next_send(send):
    client = send.client
    client.sadd(TABLE, member(TYPE, "events.a"))
    assert send() == ["events.a"]
    client.sadd(TABLE, member(TYPE, "events.b"))  # as kombu's queue_bind does it
    assert send() == ["events.a", "events.b"]
    client.srem(TABLE, member(TYPE, "events.a"))  # kombu's queue_unbind
    assert send() == ["events.b"]
    client.delete(TABLE)
    assert send() == []


def test_a_binding_replaced_by_another_client_counts_after_the_age_limit(send):
    client = send.client
    client.sadd(TABLE, member(TYPE, "events.a"))
    assert send(max_age_us=300_000) == ["events.a"]
    client.srem(TABLE, member(TYPE, "events.a"))
    client.sadd(TABLE, member(TYPE, "events.b"))  # same size: nothing tells the script at once
    replaced = time.monotonic()
    wait_until(lambda: send(max_age_us=300_000) == ["events.b"], 5, 0.02, "the replaced binding to be routed to")
    assert time.monotonic() - replaced >= 0.2  # not worked out again before the limit


def test_the_fabrics_own_changes_drop_the_routes(send):
    from event_tasks.brokers.topology import _redis_unbind

    client = send.client
    client.sadd(TABLE, member(TYPE, "events.a"), member("org.example.#", "events.b"))
    assert send() == ["events.a", "events.b"]
    _redis_unbind(client, "events.a", TYPE)
    assert not client.exists(ROUTES)
    client.sadd(TABLE, member(TYPE, "events.c"))
    assert send() == ["events.b", "events.c"]
