"""One consumer at a time for an ordered service's queue on Redis (``consume.ordering``).

RabbitMQ has single-active-consumer queues; on Redis the worker of an ordered service takes a
lease (the key ``<queue>␆␖lease``, covered by the service's ACL patterns) before it consumes,
renews it on its restore schedule and gives it up when it stops. A second worker of the service
stands by until the lease is free: after a warm shutdown at once, after a crash when its time to
live (three restore intervals) has run out. ``lease.lua`` takes, renews and releases it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any

from kombu.transport.redis import Channel

log = logging.getLogger(__name__)

LEASE = resources.files(__package__).joinpath("lease.lua").read_text()


def lease_key(queue: str) -> str:
    return f"{queue}{Channel.sep}lease"  # kombu's separator: the service's ACL patterns cover it


class QueueLease:
    """The lease of ``queue`` for ``holder``; ``acquire``: a redis-py client for one call (kombu's
    ``Channel.conn_or_acquire``: a pooled connection, never the one the channel waits on)."""

    def __init__(
        self,
        acquire: Callable[[], AbstractContextManager[Any]],  # Any: a redis-py client
        queue: str,
        holder: str,
        ttl: float,
    ) -> None:
        self.acquire = acquire
        self.key = lease_key(queue)
        self.holder = holder
        self.ttl_ms = max(1000, int(ttl * 1000))

    def _call(self, op: str) -> object:
        with self.acquire() as client:
            result = client.eval(LEASE, 1, self.key, op, self.holder, self.ttl_ms)
        return result.decode() if isinstance(result, bytes) else result

    def take(self) -> str | None:
        """Take or renew the lease; None when this holder has it, else who has it."""
        result = self._call("take")
        return None if result == 1 else str(result)

    def wait(self, poll: float = 0.5, on_wait: Callable[[str], object] | None = None) -> float:
        """Block until this holder has the lease; returns the seconds it stood by."""
        started = time.monotonic()
        told = False
        while (other := self.take()) is not None:
            if not told and on_wait is not None:
                on_wait(other)
                told = True
            time.sleep(poll)
        return time.monotonic() - started

    def release(self) -> None:
        self._call("release")
