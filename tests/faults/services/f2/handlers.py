"""Fault service f2: queue events.f2, consumes org.openedx.learning.probe.created.v1 by exact type."""

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.faults.ledger import apply

from .models import Applied


@consumer(PROBE_CREATED)
def record(event: Event) -> None:
    apply("f2", Applied, event)
