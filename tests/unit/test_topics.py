"""Topic matching: AMQP rules, and the Redis publish script agrees with Python on every case."""

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from event_tasks.brokers.redis.fanout import FANOUT_LUA, script_args
from event_tasks.topics import topic_matches

CASES = [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*", "a.b.c", False),
    ("a.#", "a.b.c", True),
    ("a.#", "a", True),
    ("#", "a.b", True),
    ("#.c", "a.b.c", True),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.x.y.c", True),
    ("a.#.c", "a.x.y.d", False),
    ("*.b.#", "a.b", True),
    ("*", "a.b", False),
    ("org.openedx.learning.#", "org.openedx.learning.certificate.created.v1", True),
    ("org.openedx.learning.#", "org.openedx.content_authoring.course.created.v1", False),
]


@pytest.mark.parametrize("pattern,key,expected", CASES)
def test_amqp_topic_rules(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


words = st.sampled_from(["a", "b", "c"])
keys = st.lists(words, min_size=1, max_size=5).map(".".join)
patterns = st.lists(st.sampled_from(["a", "b", "*", "#"]), min_size=1, max_size=5).map(".".join)


@pytest.fixture(scope="module")
def lua_matcher(redis_server):
    """Run the real publish script against a private Redis: which queues get a copy?"""
    client = redis.Redis(port=redis_server.port, db=15)
    script = client.register_script(FANOUT_LUA)

    def matches(pattern: str, key: str) -> bool:
        # a binding replaced by one of the same size: the routes kept are dropped, as our tools do
        client.delete("_kombu.binding.t", "_routes.t", "events.q")
        client.sadd("_kombu.binding.t", f"{pattern}\x06\x16\x06\x16events.q")
        args = ["events.", "", "1000000", ""]
        script_args(args, key, "\x01\x02", ["m-", "-", ""])
        pushed = script(keys=["_kombu.binding.t", "_routes.t"], args=args)[0]
        if pushed:
            assert client.lpop("events.q") == b"m-q-events.q"
        return bool(pushed)

    yield matches
    client.flushdb()


@pytest.mark.parametrize("pattern,key,expected", CASES)
def test_publish_script_uses_the_same_rules(lua_matcher, pattern, key, expected):
    assert lua_matcher(pattern, key) is expected


@settings(max_examples=150, deadline=None)
@given(pattern=patterns, key=keys)
def test_publish_script_agrees_with_python(lua_matcher, pattern, key):
    assert lua_matcher(pattern, key) is topic_matches(pattern, key)
