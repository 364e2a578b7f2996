"""The transactional outbox: events sent inside a transaction leave only if it commits.

``send_event`` inside ``transaction.atomic()`` calls :func:`enqueue`: the event (its complete
task body, original id) is written to :class:`~event_tasks.models.OutboxEvent` in the same
transaction, and an on-commit hook publishes it at once. If the broker is down at that moment,
the row stays pending and the :class:`Relay` (``python manage.py events relay``, a Procfile
process per producing service) publishes it, in id order, retrying with backoff until the broker
is back. Sent rows are pruned after ``EVENT_TASKS_OUTBOX_RETENTION`` seconds.

A row can be published twice (the on-commit hook and the relay race, or the process dies between
publishing and marking): consumers' duplicate suppression makes that harmless.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import close_old_connections, transaction
from django.utils import timezone

from .envelope import Event
from .errors import PublishError
from .models import OutboxEvent

if TYPE_CHECKING:
    from .publisher import Publisher

log = logging.getLogger(__name__)


def enqueue(publisher: Publisher, event: Event, body: str, argsrepr: str) -> OutboxEvent:
    row = OutboxEvent.objects.create(event_id=event.id, event_type=event.type, key=event.key,
                                     body=body, argsrepr=argsrepr)
    transaction.on_commit(lambda: publish_row(publisher, row), robust=True)
    return row


def publish_row(publisher: Publisher, row: OutboxEvent) -> bool:
    """Publish one outbox row and mark it sent; on a broker error leave it to the relay."""
    try:
        publisher.publish(row.event_type, row.event_id, row.body, row.argsrepr)
    except PublishError as exc:
        OutboxEvent.objects.filter(pk=row.pk).update(attempts=row.attempts + 1, last_error=str(exc)[:2000])
        log.warning("outbox: event %s not published yet (%s); the relay will retry", row.event_id, exc.cause)
        return False
    OutboxEvent.objects.filter(pk=row.pk, sent_at__isnull=True).update(sent_at=timezone.now(),
                                                                        attempts=row.attempts + 1)
    return True


class Relay:
    """Publishes committed, unsent outbox rows in order; backs off while the broker is down."""

    def __init__(self, publisher: Publisher, *, batch: int = 200, grace: float | None = None,
                 idle: float = 0.5, max_backoff: float = 30.0, retention: float | None = None) -> None:
        conf = publisher.conf
        self.publisher = publisher
        self.batch = batch
        self.grace = conf.outbox_grace if grace is None else grace
        self.idle = idle
        self.max_backoff = max_backoff
        self.retention = conf.outbox_retention if retention is None else retention
        self.stop = threading.Event()
        self.sent = 0
        self.failures = 0
        self._last_prune = 0.0

    def pending(self) -> list[OutboxEvent]:
        cutoff = timezone.now() - dt.timedelta(seconds=self.grace)
        return list(OutboxEvent.objects.filter(sent_at__isnull=True, created_at__lte=cutoff).order_by("id")[:self.batch])

    def run_once(self) -> int:
        """Publish one batch; return how many were sent. Raises PublishError when the broker is down."""
        close_old_connections()
        sent = 0
        for row in self.pending():
            if not publish_row(self.publisher, row):
                self.failures += 1
                raise PublishError(row.event_type, row.event_id, RuntimeError(row.last_error or "broker down"))
            sent += 1
        self.sent += sent
        if time.monotonic() - self._last_prune > 60:
            self.prune()
        return sent

    def prune(self) -> int:
        self._last_prune = time.monotonic()
        cutoff = timezone.now() - dt.timedelta(seconds=self.retention)
        deleted, _ = OutboxEvent.objects.filter(sent_at__lt=cutoff).delete()
        if deleted:
            log.info("outbox: pruned %d sent events older than %s", deleted, cutoff)
        return deleted

    def run_forever(self) -> None:
        backoff = 0.0
        log.info("outbox relay for %s started", self.publisher.service)
        while not self.stop.is_set():
            try:
                sent = self.run_once()
            except PublishError as exc:
                backoff = min(self.max_backoff, max(0.2, backoff * 2))
                log.warning("outbox relay: broker unavailable (%s); retrying in %.1fs", exc.cause, backoff)
                self.stop.wait(backoff)
                continue
            backoff = 0.0
            if sent < self.batch:
                self.stop.wait(self.idle)
