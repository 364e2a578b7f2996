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
from typing import Protocol

from django.db import transaction
from django.utils import timezone

from .envelope import Event
from .errors import PublishError
from .models import OutboxEvent

log = logging.getLogger(__name__)


class Publishes(Protocol):
    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None: ...


def enqueue(publisher: Publishes, event: Event, body: str, argsrepr: str) -> OutboxEvent:
    row = OutboxEvent.objects.create(event_id=event.id, event_type=event.type, key=event.key,
                                     body=body, argsrepr=argsrepr)
    transaction.on_commit(lambda: publish_row(publisher, row), robust=True)
    return row


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
