"""Fault service f3: queue events.f3, consumes every learning event by the pattern
org.openedx.learning.# in batches of up to 25 (``@consumer(..., batch=25)``): a batch is applied
in one transaction; one with a transient failure is split into single deliveries."""

from event_tasks import Event, consumer
from tests.faults.ledger import apply

from .models import Applied


@consumer("org.openedx.learning.#", batch=25, batch_wait=0.05)
def record(events: list[Event]) -> None:
    for event in events:
        apply("f3", Applied, event)
