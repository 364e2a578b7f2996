"""The archive's parts without workers: the fan-out script's appends and trimming (a private Redis),
``events backfill``'s time and rate parsing, its type filter and token bucket, its progress line."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import redis
from django.core.management.base import CommandError

from event_tasks.brokers.archive import archive_queue, envelope_time, min_id, read_redis, retention_ms, trim_redis
from event_tasks.brokers.message import Prepared, encode_body
from event_tasks.brokers.redis.fanout import RedisFanout
from event_tasks.conf import Settings
from event_tasks.ops.backfill import Progress, TokenBucket, argsrepr_of, parse_rate, parse_since, type_filter

TYPE, OTHER = "org.example.thing.happened.v1", "org.example.other.changed.v1"
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def prepared(n: int, event_type: str = TYPE) -> Prepared:
    envelope = {"id": f"e{n}", "type": event_type, "source": "s", "time": f"2026-12-03T10:00:{n % 60:02d}.000000Z"}
    body, argsrepr = encode_body(envelope, {"n": n})
    return Prepared(event_type, f"e{n}", body, argsrepr)


@pytest.fixture
def client(redis_server):
    client = redis.Redis(port=redis_server.port, db=13)
    client.flushdb()
    yield client
    client.flushdb()


def fanout(redis_server, days: float | None) -> RedisFanout:
    return RedisFanout(f"redis://127.0.0.1:{redis_server.port}/13", {}, Settings(archive_days=days))


def bind(client: redis.Redis, pattern: str, queue: str) -> None:
    client.sadd("_kombu.binding.events", f"{pattern}\x06\x16\x06\x16{queue}")


def test_each_event_is_archived_once_in_the_fanout_call_with_its_exact_body(redis_server, client):
    bind(client, TYPE, "events.a")
    bind(client, "org.example.#", "events.b")
    out = fanout(redis_server, 7)
    one = prepared(1)
    assert out.publish(*one) == 2
    batch = [prepared(2), prepared(3, OTHER), prepared(4, "org.nobody.x.y.v1")]
    assert out.publish_many(batch) == [2, 1, 0]
    rows = client.xrange("events.archive")
    assert [r[1][b"id"].decode() for r in rows] == ["e1", "e2", "e3", "e4"]  # once each, a type nobody takes too
    first = rows[0][1]
    assert first[b"body"].decode() == one.body and first[b"type"].decode() == TYPE
    assert first[b"time"].decode() == "2026-12-03T10:00:01.000000Z"
    assert client.llen("events.a") == 2 and client.llen("events.b") == 3
    out.close()


def test_without_the_setting_nothing_is_archived(redis_server, client):
    bind(client, TYPE, "events.a")
    out = fanout(redis_server, None)
    out.publish(*prepared(1))
    out.publish_many([prepared(2)])
    assert not client.exists("events.archive") and client.llen("events.a") == 2
    out.close()


def test_appends_and_prune_trim_past_the_retention(redis_server, client):
    client.config_set("stream-node-max-entries", 10)  # `~` trims whole nodes: small ones for the test
    try:
        for i in range(50):  # archived "long ago": stream ids are milliseconds
            client.xadd("events.archive", {"type": TYPE, "id": f"old{i}", "body": "[]", "time": ""}, id=f"{1000 + i}-0")
        out = fanout(redis_server, 1)
        out.publish(*prepared(1))
        out.close()
        left = [r[1][b"id"].decode() for r in client.xrange("events.archive")]
        assert left[-1] == "e1" and len(left) <= 10  # the old nodes went with the append
        for i in range(30):
            client.xadd("pruned.archive", {"type": TYPE, "id": f"o{i}", "body": "[]", "time": ""}, id=f"{2000 + i}-0")
        assert trim_redis(client, "pruned.archive", Settings(archive_days=1)) >= 20  # `events prune`
        assert client.xlen("pruned.archive") <= 10
        kept = Settings(archive_days=100_000)  # a retention longer than the epoch: nothing goes
        client.xadd("kept.archive", {"id": "k"}, id="5-0")
        assert trim_redis(client, "kept.archive", kept) == 0
    finally:
        client.config_set("stream-node-max-entries", 100)


def test_trim_arguments():
    conf = Settings(archive_days=2)
    assert retention_ms(conf) == 2 * 86_400_000
    assert min_id(conf, 3 * 86_400_000) == str(86_400_000)
    assert min_id(conf, 1000) == "0"
    assert retention_ms(Settings()) is None


def test_read_pages_through_the_stream_from_a_time_up_to_the_last_entry(client):
    for i in range(1203):
        client.xadd("events.archive", {"type": TYPE, "id": f"e{i}", "body": "[]", "time": ""}, id=f"{10_000 + i}-0")
    got = list(read_redis(client, "events.archive", 10_100))
    assert [e.event_id for e in got] == [f"e{i}" for i in range(100, 1203)]
    assert got[0].archived_ms == 10_100


def test_rabbitmq_archive_is_a_stream_bound_with_hash():
    queue = archive_queue(Settings(archive_days=7))
    assert queue.name == "events.archive"
    assert queue.queue_arguments == {"x-queue-type": "stream", "x-max-age": "7D"}
    assert [(b.exchange.name, b.routing_key) for b in queue.bindings] == [("events", "#")]
    assert archive_queue(Settings(archive_days=0.5)).queue_arguments["x-max-age"] == "12h"


def test_envelope_time_and_argsrepr_come_from_the_body():
    item = prepared(7)
    assert envelope_time(item.body) == "2026-12-03T10:00:07.000000Z"
    assert argsrepr_of(item.body) == item.argsrepr
    assert json.loads(item.body)[0][0]["id"] == "e7"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - dt.timedelta(hours=2)),
        ("7d", NOW - dt.timedelta(days=7)),
        ("90s", NOW - dt.timedelta(seconds=90)),
        ("1.5m", NOW - dt.timedelta(seconds=90)),
        ("1w", NOW - dt.timedelta(days=7)),
        ("2026-12-03T10:00:00Z", dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)),
        ("2026-12-03T10:00:00", dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)),  # no zone: UTC
        ("2026-12-03T11:00:00+01:00", dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)),
    ],
)
def test_since_takes_iso_times_and_ages(text, expected):
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-2h", "2y", "", "2026-13-01", "2027-01-01T00:00:00Z"])
def test_a_bad_or_future_since_is_one_line_exit_2(text):
    with pytest.raises(CommandError) as caught:
        parse_since(text, NOW)
    assert caught.value.returncode == 2 and "\n" not in str(caught.value) and "--since" in str(caught.value)


def test_rate():
    assert parse_rate("500/s") == 500 and parse_rate("20") == 20 and parse_rate("0.5/s") == 0.5
    for bad in ("0", "-1/s", "fast", "inf", "nan"):
        with pytest.raises(CommandError) as caught:
            parse_rate(bad)
        assert caught.value.returncode == 2


def test_the_token_bucket_holds_the_rate():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(1000):
        bucket.take()
    assert 9.8 <= now[0] <= 10.0  # 1,000 at 100/s, the first burst (10) free
    assert slept and max(slept) <= 0.011
    now[0] += 60  # idle: no more than one burst is saved up
    start = now[0]
    for _ in range(30):
        bucket.take()
    assert now[0] - start == pytest.approx(0.2, abs=0.011)


def test_the_filter_keeps_the_service_types_matching_type():
    keep = type_filter(["org.example.thing.happened.v1", "org.example.other.#"], None)
    assert keep(TYPE) and keep(OTHER) and not keep("org.example.third.x.v1")
    narrowed = type_filter(["org.example.#"], "org.example.*.changed.v1")
    assert narrowed(OTHER) and not narrowed(TYPE)
    assert not type_filter(["org.a.#"], "org.example.#")(TYPE)  # --type cannot add what S does not consume


def test_progress_line_and_bar():
    now = [0.0]
    lines: list[str] = []
    plain = Progress(lines.append, 1000, tty=False, every=5, clock=lambda: now[0])
    now[0] = 1.0
    plain.update(100)  # not yet: a line every 5 s
    now[0] = 5.0
    plain.update(500)
    assert lines == ["500/1000 read, 100/s, ETA 5s\n"]
    bars: list[str] = []
    bar = Progress(bars.append, 10, tty=True, clock=lambda: now[0])
    now[0] += 2
    bar.finish(10)
    assert bars[0].startswith("\r[" + "#" * 30 + "] 10/10 read") and bars[-1] == "\n"


def test_status_render():
    from event_tasks.ops.archive_status import render

    text = render(
        {
            "archive": "events.archive",
            "broker": "redis",
            "entries": 1200,
            "bytes": 1_228_800,
            "oldest": "2026-12-03T10:00:00+00:00",
            "newest": "2026-12-03T11:00:00+00:00",
            "last_hour": 1000,
            "last_day": 1200,
            "retention_days": 7.0,
        }
    )
    assert text.splitlines()[0] == "archive events.archive (redis): 1200 entries, 1228800 bytes"
    assert "1000/h over the last hour, 50.0/h over the last day (1200 events)" in text
    assert text.splitlines()[-1] == "  retention 7.0 days"
