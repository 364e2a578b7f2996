"""The fault services' ledger and behaviour (see tests/faults/services)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.db import models

from event_tasks import Event

_failed_once: set[str] = set()


class AppliedBase(models.Model):
    event_id = models.CharField(max_length=64, db_index=True)
    n = models.IntegerField()
    pid = models.IntegerField()
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


def transient(event_id: str, service: str) -> bool:
    return hashlib.sha1(f"{event_id}:{service}".encode()).digest()[0] < 77   # ~30% of 256


def apply(service: str, model: type[AppliedBase], event: Event) -> None:
    if event.key == f"exit:{service}":
        os._exit(7)
    model.objects.create(event_id=event.id, n=event.data["n"], pid=os.getpid())
    if transient(event.id, service) and event.id not in _failed_once:
        _failed_once.add(event.id)
        with open(Path(settings.TEST_RECORD_DIR) / f"failures-{service}.log", "a") as fh:
            fh.write(event.id + "\n")
        raise ConnectionError(f"{service}: transient failure applying {event.id}")
