"""Probe service epsilon: queue events.epsilon, consumes org.openedx.learning.probe.created.v1 by exact type."""

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.fabric.services import record


@consumer(PROBE_CREATED)
def on_probe_created(event: Event) -> None:
    record("epsilon", event)
