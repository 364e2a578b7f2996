"""``events backfill``: the archive's events since a time put into one service's queue only.

A service that subscribes today gets what is sent from now on; the archive (``brokers.archive``,
``EVENT_TASKS_ARCHIVE_DAYS``) holds what was sent before. :func:`backfill` reads it from ``since``,
keeps the types the service consumes (its handlers here, else its bindings on the broker) that match
``--type``, and puts each archived task body, unchanged (its id, its signature), into
``events.<service>``: on Redis as the fan-out pushes a copy (``RedisFanout.publish_to``), on RabbitMQ
published with confirms through the default exchange. A token bucket holds the rate; the progress
goes to ``err``. Where the backfill overlaps live traffic the service's duplicate marks suppress the
second copy. docs/archive.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from ..brokers.archive import Archived, archive_name, count_redis, read_rabbitmq, read_redis, redis_key, redis_of
from ..brokers.fanout import fanout_for
from ..brokers.message import args_repr
from ..brokers.topology import broker_kind, is_redis, passive_declare, subscription_table
from ..conf import Settings, check_service_name, settings
from ..errors import ManagementAPIUnavailable, UnknownService
from ..handlers import consuming_services, service_handlers
from ..topics import topic_matches

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Connection

ENVIRONMENT = 2  # the exit code of input no run can use (management/failures.py)
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def refuse(text: str) -> CommandError:
    return CommandError(f"events backfill: {text}", returncode=ENVIRONMENT)


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: ISO 8601 (``2026-12-03T10:00:00Z``; no zone: UTC) or an age (``90s``, ``15m``,
    ``2h``, ``7d``, ``1w``) before ``now``; a time in the future or anything else is one line."""
    now = now or dt.datetime.now(dt.UTC)
    relative = _RELATIVE.match(text)
    if relative:
        return now - dt.timedelta(seconds=float(relative.group(1)) * _UNITS[relative.group(2)])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise refuse(
            f"--since {text!r} is neither an ISO 8601 time (2026-12-03T10:00:00Z) nor an age (30m, 2h, 7d)"
        ) from None
    when = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    if when > now:
        raise refuse(f"--since {text!r} is in the future (now is {now.isoformat(timespec='seconds')})")
    return when


def parse_rate(text: str) -> float:
    """``--rate``: events per second, ``500`` or ``500/s``; more than 0."""
    number = text.strip().removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        raise refuse(f"--rate {text!r} is not a rate: events per second, e.g. 500/s") from None
    if not (rate > 0 and rate != float("inf")):
        raise refuse(f"--rate must be more than 0 events per second, not {text!r}")
    return rate


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts of ``burst`` (default: a tenth of a second's)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self.tokens = self.burst
        self.clock, self.sleep = clock, sleep
        self.last = clock()

    def take(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            wait = (1 - self.tokens) / self.rate
            self.sleep(wait)
            self.last = self.clock()
            self.tokens = 1.0
        self.tokens -= 1


def type_filter(service_patterns: Iterable[str], pattern: str | None) -> Callable[[str], bool]:
    """Whether an archived type goes to the service: one of its patterns matches it, and ``--type`` does."""
    patterns = tuple(service_patterns)

    def keep(event_type: str) -> bool:
        if pattern is not None and not topic_matches(pattern, event_type):
            return False
        return any(topic_matches(p, event_type) for p in patterns)

    return keep


class Progress:
    """``done/total, rate, ETA`` on ``err``: a bar redrawn in place on a terminal, else a line every ``every`` s."""

    def __init__(
        self,
        err: Callable[[str], object],
        total: int | None,
        tty: bool,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.err, self.total, self.tty, self.every, self.clock = err, total, tty, every, clock
        self.started = self.shown = clock()

    def line(self, done: int) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        if self.total:
            left = max(self.total - done, 0)
            eta = f"ETA {left / rate:.0f}s" if rate > 0 else "ETA ?"
            share = min(done / self.total, 1.0)
            bar = "[" + "#" * round(share * 30) + "-" * (30 - round(share * 30)) + "] " if self.tty else ""
            return f"{bar}{done}/{self.total} read, {rate:.0f}/s, {eta}"
        return f"{done} read, {rate:.0f}/s"

    def update(self, done: int, force: bool = False) -> None:
        now = self.clock()
        if force or now - self.shown >= (0.2 if self.tty else self.every):
            self.shown = now
            self.err(("\r" + self.line(done)) if self.tty else self.line(done) + "\n")

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        if self.tty:
            self.err("\n")


@dataclasses.dataclass
class Summary:
    read: int = 0
    matched: int = 0
    put: int = 0
    queue: str = ""
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "would put" if self.dry_run else "put"
        return f"backfill {self.queue}: read {self.read}, matched {self.matched}, {verb} {self.put}"


def require_archive(conf: Settings) -> None:
    if conf.archive_days is None:
        raise CommandError(
            "events: no archive: EVENT_TASKS_ARCHIVE_DAYS is not set (docs/archive.md turns it on)",
            returncode=ENVIRONMENT,
        )


def service_patterns(connection: Connection, service: str) -> list[str]:
    """The patterns ``service`` consumes: its handlers where this process sees them (its queue must
    exist: declared first, live events reach it while the backfill runs), else its bindings."""
    conf = settings()
    queue = conf.queue_name(service)
    if service in consuming_services():
        if not _declared(connection, queue):
            raise refuse(f"{queue} is not declared yet: run `events declare` (or start its worker) first")
        return service_handlers(service).patterns
    try:
        table = subscription_table(connection)
    except ManagementAPIUnavailable:
        raise refuse(
            f"no service {service!r} here: no handlers of it, and RabbitMQ's management API (its bindings) does "
            f"not answer: run the backfill as the service (EVENT_TASKS_SERVICE={service})"
        ) from None
    bound = sorted({key for key, name in table if name == queue})
    if not bound:
        known = sorted(set(consuming_services()) | _bound_services(table))
        raise refuse(
            f"no service {service!r}: no handlers of it here and no queue {queue} bound on {conf.exchange} "
            f"(services: {', '.join(known) or 'none'})"
        )
    return bound


def _declared(connection: Connection, queue: str) -> bool:
    if is_redis(connection):
        return any(name == queue for _, name in subscription_table(connection))
    return passive_declare(connection, queue)[1] is not None


def _bound_services(table: list[tuple[str, str]]) -> set[str]:
    conf = settings()
    return {
        q[len(conf.queue_prefix) :] for _, q in table if q.startswith(conf.queue_prefix) and q != archive_name(conf)
    }


def entries(connection: Connection, conf: Settings, since: dt.datetime) -> tuple[Iterator[Archived], int | None]:
    """The archive's entries from ``since`` and how many there are (Redis; ``None``: not known ahead)."""
    if is_redis(connection):
        client, key = redis_of(connection), redis_key(connection, conf)
        since_ms = int(since.timestamp() * 1000)
        return read_redis(client, key, since_ms), count_redis(client, key, since_ms)
    require_stream(connection, conf)
    return read_rabbitmq(connection, conf, since), None


def require_stream(connection: Connection, conf: Settings) -> None:
    """RabbitMQ: the archive's stream queue exists (declared by `events declare` with the archive on)."""
    if passive_declare(connection, archive_name(conf))[0] is None:
        raise CommandError(
            f"events: the archive {archive_name(conf)} is not on the broker: run `events declare` with "
            "EVENT_TASKS_ARCHIVE_DAYS set (every process of the platform sets it)",
            returncode=ENVIRONMENT,
        )


def argsrepr_of(body: str) -> str:
    """What Flower shows of a task body's arguments (as ``message.encode_body`` makes it)."""
    return args_repr(json.dumps(json.loads(body)[0], ensure_ascii=False, separators=(",", ":")))


def backfill(
    app: Celery,
    service: str,
    since: dt.datetime,
    *,
    pattern: str | None = None,
    rate: float = 500.0,
    dry_run: bool = False,
    err: Callable[[str], object] = lambda _: None,
    tty: bool = False,
) -> Summary:
    conf = settings()
    require_archive(conf)
    try:
        check_service_name(service)
    except UnknownService as exc:
        raise refuse(str(exc)) from None
    url = app.conf.broker_write_url or app.conf.broker_url or ""
    broker_kind(url)
    summary = Summary(queue=conf.queue_name(service), dry_run=dry_run)
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        keep = type_filter(service_patterns(connection, service), pattern)
        found, total = entries(connection, conf, since)
        fanout = None if dry_run else fanout_for(url, app.conf.broker_transport_options or {}, conf)
        bucket = TokenBucket(rate)
        progress = Progress(err, total, tty)
        try:
            for entry in found:
                summary.read += 1
                if keep(entry.event_type):
                    summary.matched += 1
                    if fanout is not None:
                        bucket.take()
                        fanout.publish_to(
                            summary.queue,
                            service,
                            entry.event_type,
                            entry.event_id,
                            entry.body,
                            argsrepr_of(entry.body),
                        )
                    summary.put += 1
                progress.update(summary.read)
        finally:
            if fanout is not None:
                fanout.close()
        progress.finish(summary.read)
    return summary
