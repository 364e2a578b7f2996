"""Bench-only probe services (``EVENT_TASKS_CONSUMERS_PACKAGE=bench.services``).

Each is a Django app ``bench.services.<name>`` whose ``apps.py`` names its service and whose
``handlers.py`` holds ``@consumer`` handlers of the product catalog's
``org.openedx.learning.certificate.created.v1`` (the counterpart of openedx-events'
``CERTIFICATE_CREATED``, so every system in the benchmark carries the same payload).

What a handler does besides nothing is driven by the environment of its worker:

* ``BENCH_DONE_AT`` / ``BENCH_DONE_FILE``: after that many calls, write the wall time of the
  last one to the file (how a RabbitMQ consume run knows its end: AMQP has no unacked count
  without the management plugin);
* ``BENCH_LATENCY_FILE``: append ``now - event.time`` (seconds) per event (latency runs).
"""

from __future__ import annotations

import os
import time

_done_at = int(os.environ.get("BENCH_DONE_AT") or 0)
_done_file = os.environ.get("BENCH_DONE_FILE") or ""
_calls = 0


def count(n: int = 1) -> None:
    """Count handled events; write the time of the last expected one (see the module docstring)."""
    global _calls
    _calls += n
    if _done_at and _calls >= _done_at and _done_file:
        with open(_done_file, "w") as fh:
            fh.write(repr(time.time()))
        _calls = -(10**12)  # write once


_latency = None


def record_latency(sent_at: float) -> None:
    global _latency
    if _latency is None:
        _latency = open(os.environ["BENCH_LATENCY_FILE"], "a", buffering=1)
    _latency.write(f"{time.time() - sent_at:.6f}\n")
