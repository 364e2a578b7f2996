"""Probe service eta: queue events.eta, consumes org.openedx.learning.probe.updated.v1 in batches
(``@consumer(..., batch=50)``). Each call appends the batch's event ids to ``eta-batches.jsonl``
in the record dir, then records every event like the other probes (so the keys of
tests.fabric.services steer it: ``fail:eta:always`` fails the whole batch it is in)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_UPDATED
from tests.fabric.services import record


@consumer(PROBE_UPDATED, batch=50, batch_wait=0.2)
def audit_batch(events: list[Event]) -> None:
    with open(Path(settings.TEST_RECORD_DIR) / "eta-batches.jsonl", "a") as fh:
        fh.write(json.dumps([e.id for e in events]) + "\n")
    for event in events:
        record("eta", event)
