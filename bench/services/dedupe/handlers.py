"""Service ``dedupe``: a no-op handler with duplicate suppression on (the default)."""
from event_tasks import Event, consumer

from bench.services import count

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@consumer(CERTIFICATE_CREATED)
def noop_deduplicated(event: Event) -> None:
    count()
