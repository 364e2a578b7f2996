"""The transactional outbox rows: events sent inside a transaction leave only if it commits.

``send_event`` inside ``transaction.atomic()`` calls :func:`enqueue`: the event (its complete
task body, original id) is written to :class:`~event_tasks.models.OutboxEvent` in the same
transaction, and an on-commit hook publishes it at once. If the broker is down at that moment,
the row stays pending and the relay (``relay.py``, ``python manage.py events relay``) publishes
it later.

A row can be published twice (the on-commit hook and the relay race, or the process dies between
publishing and marking): consumers' duplicate suppression makes that harmless.
"""
from __future__ import annotations

import logging
from typing import Any, Protocol

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .envelope import Event
from .fanout import Prepared
from .errors import PublishError
from .models import OutboxEvent

log = logging.getLogger(__name__)


class Publishes(Protocol):
    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None: ...

    def publish_many(self, batch: Any) -> list[int | None]: ...


def enqueue(publisher: Publishes, event: Event, body: str, argsrepr: str) -> OutboxEvent:
    row = OutboxEvent.objects.create(event_id=event.id, event_type=event.type, key=event.key,
                                     body=body, argsrepr=argsrepr)
    transaction.on_commit(lambda: publish_row(publisher, row), robust=True)
    return row


def enqueue_many(publisher: Publishes, pairs: list[tuple[Event, Any]]) -> list[OutboxEvent]:
    """Several events in one insert; published together right after commit (or by the relay)."""
    rows = OutboxEvent.objects.bulk_create([
        OutboxEvent(event_id=event.id, event_type=event.type, key=event.key, body=prepared.body,
                    argsrepr=prepared.argsrepr) for event, prepared in pairs])
    ids = [event.id for event, _ in pairs]
    transaction.on_commit(lambda: publish_rows(publisher, ids), robust=True)
    return rows


def publish_rows(publisher: Publishes, event_ids: list[str]) -> bool:
    """Publish outbox rows as one batch and mark them sent; on a broker error leave them to the relay."""
    rows = list(OutboxEvent.objects.filter(event_id__in=event_ids, sent_at__isnull=True).order_by("id"))
    if not rows:
        return True
    try:
        publisher.publish_many([Prepared(r.event_type, r.event_id, r.body, r.argsrepr) for r in rows])
    except PublishError as exc:
        OutboxEvent.objects.filter(pk__in=[r.pk for r in rows]).update(attempts=F("attempts") + 1,
                                                                       last_error=str(exc)[:2000])
        log.warning("outbox: %d events not published yet (%s); the relay will retry", len(rows), exc.cause)
        return False
    OutboxEvent.objects.filter(pk__in=[r.pk for r in rows], sent_at__isnull=True).update(
        sent_at=timezone.now(), attempts=F("attempts") + 1)
    return True


def publish_row(publisher: Publishes, row: OutboxEvent) -> bool:
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
