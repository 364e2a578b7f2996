"""Service ``batchdedupe``: a no-op handler taking batches of 100, duplicate suppression on (one
bulk mark per batch), for the PostgreSQL row of the issue's targets."""

import os

from bench.services import count
from event_tasks import consumer

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"
BATCH = int(os.environ.get("BENCH_BATCH_SIZE") or 100)


@consumer(CERTIFICATE_CREATED, batch=BATCH)
def noop_batch_deduplicated(events) -> None:
    count(len(events))
