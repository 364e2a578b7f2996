"""Service ``dedupe``: a no-op handler with duplicate suppression on (the default)."""

from bench.services import count
from event_tasks import Event, consumer

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@consumer(CERTIFICATE_CREATED)
def noop_deduplicated(event: Event) -> None:
    count()
