"""Fault service f1: queue events.f1, consumes org.openedx.learning.probe.created.v1 by exact type."""

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.faults.ledger import apply

from .models import Applied


@consumer(PROBE_CREATED)
def record(event: Event) -> None:
    apply("f1", Applied, event)
