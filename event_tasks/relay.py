"""The outbox relay: publishes committed, unsent outbox rows in order, backing off while the
broker is down (``python manage.py events relay``, one Procfile process per producing service).

Sent rows are pruned after ``EVENT_TASKS_OUTBOX_RETENTION`` seconds.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from django.db import close_old_connections
from django.utils import timezone

from .errors import PublishError
from .models import OutboxEvent
from .outbox import publish_rows
from .publisher import Publisher

log = logging.getLogger(__name__)


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
        rows = self.pending()
        if rows and not publish_rows(self.publisher, [row.event_id for row in rows]):   # one batch, in id order
            self.failures += 1
            raise PublishError(rows[0].event_type, rows[0].event_id, RuntimeError("broker down"))
        sent = len(rows)
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
