"""The outbox relay: publishes committed, unsent outbox rows, backing off while the broker is down
(``python manage.py events relay``, one Procfile process per producing service; several may run).

Each round claims a batch of due rows (``outbox.claim``: ``SKIP LOCKED`` or a conditional
UPDATE, with a lease), so two relays never publish the same row while the lease lasts. The
batch is published in one go; if the broker refuses it for a reason other than being
unreachable, the rows are published one by one and a row that fails on its own is deferred with
backoff (``attempts``, ``next_attempt_at``, ``last_error``, a warning in the log) while the
others go out: one poison row never blocks the relay.

Sent rows are pruned after ``EVENT_TASKS_OUTBOX_RETENTION`` seconds (``retention.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time

from django.db import DatabaseError, close_old_connections
from django.db.models import Q

from ..brokers.message import Prepared
from ..errors import BatchRefused, PublishError
from ..models import OutboxEvent
from ..store import outbox, retention
from .publisher import Publisher

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Deferred:
    row: OutboxEvent
    error: str
    next_attempt_at: dt.datetime


class Relay:
    """Publishes committed, unsent outbox rows it claimed; backs off while the broker is down."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        batch: int = 200,
        grace: float | None = None,
        idle: float = 0.5,
        max_backoff: float = 30.0,
        retention: float | None = None,
        lease: float | None = None,
        using: str | None = None,
        name: str | None = None,
    ) -> None:
        conf = publisher.conf
        self.publisher = publisher
        self.batch = batch
        self.grace = conf.outbox_grace if grace is None else grace
        self.lease = conf.outbox_lease if lease is None else lease
        self.idle = idle
        self.max_backoff = max_backoff
        self.retention = conf.outbox_retention if retention is None else retention
        self.using = using or outbox.database()
        self.name = name or outbox.new_token("relay")
        self.stop = threading.Event()
        self.sent = 0
        self.failures = 0
        self.deferred: list[Deferred] = []  # rows deferred by this relay, most recent last (bounded)
        self.claimed = 0  # rows claimed by the last round
        self._round = 0
        self._last_prune = 0.0

    def claim(self) -> list[OutboxEvent]:
        self._round += 1
        return outbox.claim(
            self.using, f"{self.name}#{self._round}", batch=self.batch, lease=self.lease, grace=self.grace
        )

    def run_once(self) -> int:
        """Publish one claimed batch; return how many were sent. Raises PublishError when the broker is down."""
        close_old_connections()
        rows = self.claim()
        self.claimed = len(rows)
        sent = self.publish(rows) if rows else 0
        self.sent += sent
        if time.monotonic() - self._last_prune > 60:
            self.prune()
        return sent

    def publish(self, rows: list[OutboxEvent]) -> int:
        readable = []
        for row in rows:
            try:
                outbox.check_row(row)
            except ValueError as exc:
                self._defer(row, exc)
            else:
                readable.append(row)
        if not readable:
            return 0
        try:
            self.publisher.publish_many([_prepared(r) for r in readable])
        except Exception as exc:  # noqa: BLE001 - sorted below: the broker, or one of the rows
            if self.publisher.unreachable(exc):
                return self._broker_down(readable, exc)
            refused = getattr(exc, "cause", None)
            if isinstance(refused, BatchRefused):  # the broker says which ones: no need to try each
                sent = outbox.mark_sent(self.using, Q(pk__in=[readable[i].pk for i in refused.accepted]))
                for i, error in refused.failed.items():
                    self._defer(readable[i], error)
                done = {*refused.accepted, *refused.failed}
                rest = [row for i, row in enumerate(readable) if i not in done]
                return sent + (self.publish(rest) if rest else 0)
        else:
            return outbox.mark_sent(self.using, Q(pk__in=[r.pk for r in readable]))
        sent = 0  # refused, not unreachable: find the row(s) at fault
        for i, row in enumerate(readable):
            try:
                self.publisher.publish(*_prepared(row))
            except Exception as exc:  # noqa: BLE001
                if self.publisher.unreachable(exc):
                    self.sent += sent
                    return self._broker_down(readable[i:], exc)
                self._defer(row, exc)
            else:
                sent += outbox.mark_sent(self.using, Q(pk=row.pk))
        return sent

    def _broker_down(self, rows: list[OutboxEvent], exc: BaseException) -> int:
        outbox.release(self.using, Q(pk__in=[r.pk for r in rows]), exc)
        self.failures += 1
        if isinstance(exc, PublishError):
            raise exc
        raise PublishError(rows[0].event_type, rows[0].event_id, exc) from exc

    def _defer(self, row: OutboxEvent, exc: BaseException) -> None:
        at = outbox.defer(self.using, row, exc, self.publisher.conf)
        cause = getattr(exc, "cause", exc)
        log.warning(
            "outbox relay: event %s (%s, row #%d) failed on its own, attempt %d: %r; the others go on, "
            "it is retried at %s",
            row.event_id,
            row.event_type,
            row.pk,
            row.attempts + 1,
            cause,
            at.isoformat(timespec="seconds"),
        )
        self.deferred = [*self.deferred[-99:], Deferred(row, repr(cause), at)]

    def prune(self) -> int:
        self._last_prune = time.monotonic()
        deleted = retention.prune_outbox(self.using, self.retention, self.publisher.conf.prune_batch)
        if deleted:
            log.info("outbox: pruned %d sent events older than %.0f s", deleted, self.retention)
        return deleted

    def run_forever(self) -> None:
        backoff = 0.0
        log.info("outbox relay %s for %s started (database %r)", self.name, self.publisher.service, self.using)
        while not self.stop.is_set():
            try:
                self.run_once()
            except PublishError as exc:
                backoff = min(self.max_backoff, max(0.2, backoff * 2))
                log.warning("outbox relay: broker unavailable (%s); retrying in %.1fs", exc.cause, backoff)
                self.stop.wait(backoff)
                continue
            except DatabaseError as exc:  # the database is down or restarting: the rows wait there
                backoff = min(self.max_backoff, max(0.2, backoff * 2))
                log.warning("outbox relay: database unavailable (%s); retrying in %.1fs", exc, backoff)
                self.stop.wait(backoff)
                continue
            backoff = 0.0
            if self.claimed < self.batch:
                self.stop.wait(self.idle)

    def drain(self) -> int:
        """Publish every due row (rounds until one claims less than a batch); return how many were sent."""
        total = 0
        while True:
            total += self.run_once()
            if self.claimed < self.batch:
                return total

    def summary(self, sent: int) -> str:
        """``events relay --once``: what went out, and every row that keeps failing on its own."""
        failing = outbox.failing(self.using)
        lines = [f"published {sent} outbox event(s); {len(failing)} failing, waiting for a retry"]
        for row in failing[:50]:
            lines.append(
                f"  #{row.pk} {row.event_type} {row.event_id} attempts={row.attempts} "
                f"next={row.next_attempt_at:%Y-%m-%d %H:%M:%S}: {row.last_error[:200]}"
            )
        if len(failing) > 50:
            lines.append(f"  … and {len(failing) - 50} more (the outbox admin, filter 'failing on its own')")
        return "\n".join(lines)


def _prepared(row: OutboxEvent) -> Prepared:
    return Prepared(row.event_type, row.event_id, row.body, row.argsrepr)
