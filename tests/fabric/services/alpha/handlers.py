"""Probe service alpha: queue events.alpha, consumes org.openedx.learning.probe.created.v1 by exact type.

With ``PROBE_DEDUP=0`` its handler runs without duplicate suppression (every copy runs it).
With ``PROBE_NEXT_RELEASE=1`` in its environment, alpha's code is "the next release": it also
consumes org.openedx.learning.probe.updated.v1 (the deploy tests run old and new workers side by side).
"""

import os

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED
from tests.fabric.services import record


@consumer(PROBE_CREATED, deduplicate=os.environ.get("PROBE_DEDUP", "1") == "1")
def on_probe_created(event: Event) -> None:
    record("alpha", event)


if os.environ.get("PROBE_NEXT_RELEASE") == "1":

    @consumer(PROBE_UPDATED)
    def on_probe_updated(event: Event) -> None:
        record("alpha", event)
