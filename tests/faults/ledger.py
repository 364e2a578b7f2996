"""The fault services' ledger and behaviour (see tests/faults/services)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.db import models

from event_tasks import Event


class AppliedBase(models.Model):
    event_id = models.CharField(max_length=64, db_index=True)
    n = models.IntegerField()
    pid = models.IntegerField()
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


def transient(event_id: str, service: str) -> bool:
    return hashlib.sha1(f"{event_id}:{service}".encode()).digest()[0] < 77  # ~30% of 256


def apply(service: str, model: type[AppliedBase], event: Event) -> None:
    if event.key == f"exit:{service}":
        os._exit(7)
    model.objects.create(event_id=event.id, n=event.data["n"], pid=os.getpid())
    if transient(event.id, service) and first_failure(service, event.id):
        with open(Path(settings.TEST_RECORD_DIR) / f"failures-{service}.log", "a") as fh:
            fh.write(event.id + "\n")
        raise ConnectionError(f"{service}: transient failure applying {event.id}")


def first_failure(service: str, event_id: str) -> bool:
    """True once per (service, event) across every pool process and restart of that service's worker.

    A marker file created with O_EXCL: a per-process record would fail an event again in each new
    pool process (a restarted worker, a pool replaced after a lost connection, the parts of a split
    batch landing in another process) and could use up EVENT_TASKS_MAX_RETRIES on a healthy event.
    """
    marks = Path(settings.TEST_RECORD_DIR) / f"failed-once-{service}"
    marks.mkdir(exist_ok=True)
    try:
        os.close(os.open(marks / event_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
