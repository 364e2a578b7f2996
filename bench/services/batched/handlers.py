"""Service ``batched``: a no-op handler taking events in batches, if ``@consumer`` has ``batch=``.

When the installed event-tasks has no ``batch`` option this module registers nothing (the bench
does not start this service then: its row says "not available").
"""

import inspect
import os

from bench.services import count
from event_tasks import consumer

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"
BATCH = int(os.environ.get("BENCH_BATCH_SIZE") or 100)
SUPPORTED = "batch" in inspect.signature(consumer).parameters


def noop_batch(events) -> None:
    # A list of events (or one event, if the library hands them one at a time).
    count(len(events) if isinstance(events, (list, tuple)) else 1)


if SUPPORTED:
    try:  # duplicate suppression off, like the row it is compared with, if the library allows it
        noop_batch = consumer(CERTIFICATE_CREATED, batch=BATCH, deduplicate=False)(noop_batch)
        DEDUPLICATE = False
    except Exception:
        noop_batch = consumer(CERTIFICATE_CREATED, batch=BATCH)(noop_batch)
        DEDUPLICATE = True
