"""Probe service gamma: queue events.gamma, consumes every learning event by the pattern org.openedx.learning.#."""

from event_tasks import Event, consumer
from tests.fabric.services import record


@consumer("org.openedx.learning.#")
def on_learning_event(event: Event) -> None:
    record("gamma", event)
