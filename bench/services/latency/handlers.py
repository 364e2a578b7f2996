"""Service ``latency``: records send→handler latency (``now - event.time``), duplicate suppression off."""

from bench.services import record_latency
from event_tasks import Event, consumer

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@consumer(CERTIFICATE_CREATED, deduplicate=False)
def record(event: Event) -> None:
    record_latency(event.time.timestamp())
