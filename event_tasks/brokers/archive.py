"""The archive (``EVENT_TASKS_ARCHIVE_DAYS``): every event sent, kept as its task body for N days.

* Redis: a stream ``<exchange>.archive`` the fan-out script appends each event to once, in the
  same call as its copies (``redis/fanout.lua``), fields ``type``, ``id``, ``body``, ``time``,
  trimmed by ``MINID ~`` (stream ids are milliseconds) on each append and by :func:`trim_redis`;
* RabbitMQ: a stream queue ``<exchange>.archive`` (``x-queue-type: stream``, ``x-max-age``) bound to
  the exchange with ``#``; the broker drops segments older than the retention.

Reading it (:func:`read_redis`, :func:`read_rabbitmq`) yields :class:`Archived` entries from a time
on; ``ops.backfill`` puts them into one service's queue. docs/archive.md, docs/decisions/0019.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from kombu import Connection, Exchange, Queue, binding

from ..conf import Settings
from ..envelope import parse_time

if TYPE_CHECKING:
    import redis

PAGE = 500  # entries per XRANGE (Redis) and the prefetch of the stream consumer (RabbitMQ)
ATTACH_EARLY = dt.timedelta(minutes=1)


class Archived(NamedTuple):
    """One archived event: its type, id, task body (as sent: the same signature) and when it was archived."""

    event_type: str
    event_id: str
    body: str
    archived_ms: int  # milliseconds since the epoch (the Redis stream id; RabbitMQ: the envelope time)


def archive_name(conf: Settings) -> str:
    """The archive's stream (Redis) or stream queue (RabbitMQ): ``<exchange>.archive``."""
    return f"{conf.exchange}.archive"


def retention_ms(conf: Settings) -> int | None:
    return None if conf.archive_days is None else round(conf.archive_days * 86_400_000)


def min_id(conf: Settings, now_ms: int) -> str:
    """``XTRIM``/``XADD``'s ``MINID`` for the retention: entries older than it go."""
    keep = retention_ms(conf)
    return str(max(0, now_ms - (keep or 0)))


def archive_queue(conf: Settings) -> Queue:
    """RabbitMQ: the archive's stream queue, bound to the exchange with ``#`` (every event)."""
    days = conf.archive_days or 0
    # x-max-age takes whole units: days when whole, else hours (at least one)
    age = f"{int(days)}D" if float(days).is_integer() else f"{max(1, round(days * 24))}h"
    return Queue(
        archive_name(conf),
        exchange=Exchange(""),
        routing_key=archive_name(conf),
        durable=True,
        bindings=[binding(Exchange(conf.exchange, type="topic", durable=True), routing_key="#")],
        queue_arguments={"x-queue-type": "stream", "x-max-age": age},
    )


def is_archive(queue: str, conf: Settings) -> bool:
    return queue == archive_name(conf)


# -- Redis ----------------------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def xrange(client: redis.Redis, key: str, start: str, end: str, count: int, reverse: bool = False) -> Entries:
    """``XRANGE``/``XREVRANGE`` typed: redis-py's stubs allow None and str for a client without decoding."""
    rows = client.xrevrange(key, end, start, count=count) if reverse else client.xrange(key, start, end, count=count)
    return cast(Entries, rows or [])  # cast: a client without decode_responses answers bytes


def redis_key(connection: Connection, conf: Settings) -> str:
    """The archive stream's key, with kombu's ``global_keyprefix`` (the queues' lists have it too)."""
    prefix = (connection.transport_options or {}).get("global_keyprefix", "") or ""
    return str(prefix) + archive_name(conf)


def redis_of(connection: Connection) -> redis.Redis:
    """The redis-py client of a kombu Redis connection."""
    return cast("redis.Redis", connection.default_channel.client)  # type: ignore[attr-defined]  # kombu's stubs: a bare StdChannel; Redis's has .client


def read_redis(client: redis.Redis, key: str, since_ms: int, until: str | None = None) -> Iterator[Archived]:
    """The entries of the stream from ``since_ms`` up to ``until`` (a stream id; default: the last
    entry when the read starts, so events sent meanwhile are left to the live fan-out)."""
    if until is None:
        last = xrange(client, key, "-", "+", 1, reverse=True)
        if not last:
            return
        until = _text(last[0][0])
    start = f"{since_ms}-0"
    while True:
        page = xrange(client, key, start, until, PAGE)
        for entry_id, fields in page:
            got = {_text(k): _text(v) for k, v in fields.items()}
            yield Archived(got["type"], got["id"], got["body"], int(_text(entry_id).split("-")[0]))
        if len(page) < PAGE:
            return
        ms, seq = _text(page[-1][0]).split("-")
        start = f"{ms}-{int(seq) + 1}"


def count_redis(client: redis.Redis, key: str, since_ms: int, cap: int = 1_000_000) -> int:
    """Entries from ``since_ms`` on (paged; stops counting at ``cap``)."""
    counted, start = 0, f"{since_ms}-0"
    while counted < cap:
        page = xrange(client, key, start, "+", 5000)
        counted += len(page)
        if len(page) < 5000:
            break
        ms, seq = _text(page[-1][0]).split("-")
        start = f"{ms}-{int(seq) + 1}"
    return counted


def trim_redis(client: redis.Redis, key: str, conf: Settings) -> int:
    """Drop the entries past the retention (approximately: whole nodes, as ``MINID ~``); returns how many."""
    now_ms = int(time.time() * 1000)
    return int(client.xtrim(key, minid=min_id(conf, now_ms), approximate=True))


# -- RabbitMQ -------------------------------------------------------------------------------------


def read_rabbitmq(connection: Connection, conf: Settings, since: dt.datetime, idle: float = 2.0) -> Iterator[Archived]:
    """The stream queue's messages from ``since`` on (``x-stream-offset`` a timestamp a minute
    earlier; older entries, by their envelope time, are skipped here), up to the time the read
    started; ends when nothing comes for ``idle`` seconds (the end of the stream)."""
    started_ms = int(time.time() * 1000) + 1  # milliseconds, truncated as the envelope times below
    since_ms = int(since.timestamp() * 1000)
    channel: Any = connection.channel()  # Any: py-amqp's channel (kombu's stubs: a bare StdChannel)
    got: list[Archived] = []

    def on_message(message: object) -> None:
        headers = getattr(message, "headers", {}) or {}
        body = getattr(message, "body", b"")
        text = body.decode() if isinstance(body, bytes) else str(body)
        got.append(
            Archived(str(headers.get("task", "")), str(headers.get("root_id") or headers.get("id", "")), text, 0)
        )
        channel.basic_ack(getattr(message, "delivery_tag", 0))

    try:
        channel.basic_qos(0, PAGE, False)  # a stream queue's consumer needs a prefetch
        channel.basic_consume(
            archive_name(conf),
            no_ack=False,
            callback=on_message,
            # a minute early: the offset is whole seconds, and RabbitMQ attaches at a chunk (a batch of
            # messages stamped with its first one's time); what is older is skipped below
            arguments={"x-stream-offset": since - ATTACH_EARLY},
        )
        while True:
            try:
                connection.drain_events(timeout=idle)
            except TimeoutError:  # socket.timeout: nothing more in the stream
                return
            while got:
                entry = got.pop(0)
                when = _envelope_ms(entry.body)
                if when < since_ms:
                    continue
                if when > started_ms:
                    return
                yield entry._replace(archived_ms=when)
    finally:
        channel.close()


def envelope_time(body: str) -> str:
    """The envelope's ``time`` in a task body, without parsing it: the envelope comes first, and no
    field before ``time`` (id, type, source) can hold ``"time":"`` (an id has no ':')."""
    start = body.find('"time":"')
    if start < 0:
        return ""
    start += 8
    return body[start : body.find('"', start)]


def _envelope_ms(body: str) -> int:
    text = envelope_time(body)
    try:
        return int(parse_time(text).timestamp() * 1000)
    except ValueError:
        return 0
