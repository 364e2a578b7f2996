"""``events archive status``: how big the archive is, how old, how fast it grows (docs/archive.md).

Entries and bytes as the broker says (Redis: ``XLEN``, ``MEMORY USAGE``; RabbitMQ: the management
API's counters, which lag a few seconds, else the queue's declare-ok), the oldest and newest
event's time, the events of the last hour and the last day (counted by reading the archive from
then: at most ``COUNT_CAP`` each), and the retention.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import TYPE_CHECKING

from ..brokers.archive import archive_name, count_redis, read_rabbitmq, redis_key, redis_of, xrange
from ..brokers.rabbitmq.api import ManagementAPI
from ..brokers.topology import is_redis, passive_declare
from ..conf import settings
from ..errors import ManagementAPIUnavailable
from .backfill import require_archive, require_stream

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Connection

COUNT_CAP = 1_000_000


def _iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def collect(app: Celery) -> dict[str, object]:
    conf = settings()
    require_archive(conf)
    now = dt.datetime.now(dt.UTC)
    hour, day = now - dt.timedelta(hours=1), now - dt.timedelta(days=1)
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        if is_redis(connection):
            found = _redis(connection, hour, day)
        else:
            found = _rabbitmq(connection, hour, day)
    return {
        "archive": archive_name(conf),
        **found,
        "retention_days": conf.archive_days,
    }


def _redis(connection: Connection, hour: dt.datetime, day: dt.datetime) -> dict[str, object]:
    conf = settings()
    client, key = redis_of(connection), redis_key(connection, conf)
    if not client.exists(key):
        return {
            "broker": "redis",
            "entries": 0,
            "bytes": 0,
            "oldest": None,
            "newest": None,
            "last_hour": 0,
            "last_day": 0,
        }
    first, last = xrange(client, key, "-", "+", 1), xrange(client, key, "-", "+", 1, reverse=True)

    def ms(rows: list[tuple[bytes, dict[bytes, bytes]]]) -> int | None:
        return int(rows[0][0].decode().split("-")[0]) if rows else None

    return {
        "broker": "redis",
        "entries": int(client.xlen(key)),
        "bytes": client.memory_usage(key),
        "oldest": _iso(ms(first)),
        "newest": _iso(ms(last)),
        "last_hour": count_redis(client, key, int(hour.timestamp() * 1000), COUNT_CAP),
        "last_day": count_redis(client, key, int(day.timestamp() * 1000), COUNT_CAP),
    }


def _rabbitmq(connection: Connection, hour: dt.datetime, day: dt.datetime) -> dict[str, object]:
    conf = settings()
    name = archive_name(conf)
    require_stream(connection, conf)
    entries, bytes_ = None, None
    try:
        stats = ManagementAPI.for_broker(connection.as_uri(include_password=True), conf.rabbitmq_management_url).queue(
            name
        )
        if stats:
            entries, bytes_ = stats.get("messages"), stats.get("message_bytes")
    except ManagementAPIUnavailable:
        pass
    if entries is None:
        entries = passive_declare(connection, name)[0]
    oldest = next(iter(read_rabbitmq(connection, conf, dt.datetime(1970, 1, 2, tzinfo=dt.UTC), idle=1.0)), None)
    last_day = list(itertools.islice(read_rabbitmq(connection, conf, day, idle=1.0), COUNT_CAP))
    last_hour = sum(1 for e in last_day if e.archived_ms >= hour.timestamp() * 1000)
    return {
        "broker": "rabbitmq",
        "entries": entries,
        "bytes": bytes_,
        "oldest": _iso(oldest.archived_ms) if oldest else None,
        "newest": _iso(last_day[-1].archived_ms) if last_day else None,
        "last_hour": last_hour,
        "last_day": len(last_day),
    }


def render(found: dict[str, object]) -> str:
    size, day = found.get("bytes"), found["last_day"]
    per_hour = f"{day / 24:.1f}" if isinstance(day, int) else "?"
    lines = [
        f"archive {found['archive']} ({found['broker']}): {found['entries']} entries"
        + (f", {size} bytes" if size is not None else ""),
        f"  oldest    {found['oldest'] or '-'}",
        f"  newest    {found['newest'] or '-'}",
        f"  growth    {found['last_hour']}/h over the last hour, {per_hour}/h over the last day ({day} events)",
        f"  retention {found['retention_days']} days",
    ]
    return "\n".join(lines)
