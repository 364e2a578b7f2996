"""Service ``ordered``: ``dedupe``'s no-op handler with per-key ordering (``ordered=True``)."""

from bench.services import count
from event_tasks import Event, consumer

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@consumer(CERTIFICATE_CREATED, ordered=True)
def noop_in_key_order(event: Event) -> None:
    count()
