"""Celery's native delayed-delivery set-up, run beside the event loop instead of in it.

With quorum queues Celery's worker adds a consumer step (``DelayedDelivery``) that, at every
consumer start and every reconnect, declares the delay levels and binds the worker's queues
through *each* URL of the broker failover list in turn, retrying an unreachable one three times
with sleeps of 1, 3 and 5 seconds. After a cluster node dies that step runs again and blocks the
worker's event loop for about 17 seconds on the dead node's URL: nothing is consumed, results of
the pool are not collected, and the pool's hard time limit kills the processes that finished
(measured in ``tests/faults/test_cluster_faults.py``: an 18 s pause; under CI's load the
service did not recover within 270 s).

:func:`off_the_loop` keeps the step and everything it declares, for every URL as Celery does,
and only moves the work onto a thread of its own, so a dead node delays the set-up, not the
events. The step declares on connections it opens itself (``connection_for_write(url=...)``),
never on the worker's, so the thread shares nothing with the loop.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

STEP_NAME = "celery.worker.consumer.delayed_delivery.DelayedDelivery"
MARK = "_event_tasks_off_the_loop"


def off_the_loop(c: Any) -> bool:  # Any: Celery's worker consumer (its stubs lack blueprint.steps)
    """Make the consumer's delayed-delivery step start on a thread; False where there is no such step."""
    steps = getattr(getattr(c, "blueprint", None), "steps", None) or {}
    step = steps.get(STEP_NAME)
    if step is None:
        return False
    if getattr(step, MARK, False):
        return True
    blocking = step.start

    def start(consumer: object) -> None:
        def run() -> None:
            try:
                blocking(consumer)
            except Exception:  # a failed set-up is logged, as Celery's own step logs it
                log.exception("Celery's delayed-delivery set-up failed")

        threading.Thread(target=run, name="celery-delayed-delivery-setup", daemon=True).start()

    step.start = start
    setattr(step, MARK, True)
    return True
