"""Service ``noop``: a no-op handler, duplicate suppression off (the fabric's own cost)."""

from bench.services import count
from event_tasks import Event, consumer

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@consumer(CERTIFICATE_CREATED, deduplicate=False)
def noop(event: Event) -> None:
    count()
