"""Service ``noop``: a no-op handler, duplicate suppression off (the fabric's own cost)."""
from event_tasks import Event, consumer

from bench.services import count

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@consumer(CERTIFICATE_CREATED, deduplicate=False)
def noop(event: Event) -> None:
    count()
