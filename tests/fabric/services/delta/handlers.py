"""Probe service delta: queue events.delta, consumes only org.openedx.catalog.probe.changed.v1."""

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import CATALOG_PROBE
from tests.fabric.services import record


@consumer(CATALOG_PROBE)
def on_catalog_probe(event: Event) -> None:
    record("delta", event)
