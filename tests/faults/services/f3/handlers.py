"""Fault service f3: queue events.f3, consumes every learning event by the pattern org.openedx.learning.#."""
from event_tasks import Event, consumer
from tests.faults.ledger import apply

from .models import Applied


@consumer("org.openedx.learning.#")
def record(event: Event) -> None:
    apply("f3", Applied, event)
