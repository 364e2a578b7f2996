"""One module per bench section. Each has

* ``NAME``: its ``--only`` name (``None`` for ``unmeasured``, which every invocation ends with);
* ``TITLES``: the sections of RESULTS.md it writes, in order;
* ``describe(harness)``: declares those sections and their descriptions;
* ``run(harness)``: measures, adding rows to ``harness.results``.

The shared machinery (private brokers, workers, row recording) is ``bench.common.Harness``;
``bench.run`` orders the sections and writes the results.
"""

from __future__ import annotations

from . import (
    archive,
    cluster,
    consume,
    latency,
    network,
    openedx,
    ordering,
    outbox,
    publish,
    rabbitmq,
    signing,
    unmeasured,
)

ALL = (
    publish,
    consume,
    latency,
    outbox,
    rabbitmq,
    cluster,
    network,
    openedx,
    signing,
    archive,
    ordering,
    unmeasured,
)  # the order of RESULTS.md
