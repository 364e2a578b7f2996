"""Counting the events a worker in ``EVENT_TASKS_SIGNING_MODE = "warn"`` ran although they would be refused."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..models import SignatureWarning

log = logging.getLogger(__name__)


def count_warning(service: str, reason: str, event_type: str, source: str, event_id: str, detail: str) -> None:
    """Add one delivery to its (service, reason, type, source) row; a failure is logged, never raised."""
    key = {"service": service[:64], "reason": reason, "event_type": event_type[:255], "source": source[:255]}
    last = {"last_event_id": event_id[:64], "last_detail": detail[:2000], "last_at": timezone.now()}
    try:
        if not SignatureWarning.objects.filter(**key).update(count=F("count") + 1, **last):
            try:
                with transaction.atomic():
                    SignatureWarning.objects.create(**key, count=1, **last)
            except IntegrityError:  # another pool process created it first
                SignatureWarning.objects.filter(**key).update(count=F("count") + 1, **last)
    except Exception:  # warn mode never stops a delivery: the log line stays
        log.exception("could not count a signature warning (%s, %s from %s)", reason, event_type, source)
