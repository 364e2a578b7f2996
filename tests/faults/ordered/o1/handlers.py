"""Ordered service o1: applies probe events of one key in the order they were sent."""

import os

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED
from tests.faults.ledger import first_failure, transient

from .models import Applied


@consumer(PROBE_CREATED, ordered=True)
@consumer(PROBE_UPDATED, ordered=True)
def apply_in_order(event: Event) -> None:
    if event.data.get("note") == "always-fail":
        raise ConnectionError(f"o1: {event.id} always fails")
    Applied.objects.create(event_id=event.id, key=event.key or "", n=event.data["n"], pid=os.getpid())
    if transient(event.id, "o1") and first_failure("o1", event.id):
        raise ConnectionError(f"o1: transient failure applying {event.id}")
