"""The worker's kombu transport on Redis behind Sentinel: ``transport``'s crash-safe event channel
on kombu's Sentinel transport.

kombu's ``SentinelChannel`` builds each channel's connection pool on the master the sentinels
name (the transport option ``master_name``), and those connections ask the sentinels again on
every reconnect: after a failover, Celery reconnects the worker's consumer and the event intake
opens its channel on the promoted replica. The consume step itself (the atomic move into the
in-flight list, the tracked take, the sweep, lease renewals, each event channel's restore
schedule) is ``transport``'s, unchanged; every other channel behaves as kombu's Sentinel channel.

kombu switches a connection to the next URL of a ``;`` list after a failed connect and takes the
transport from that URL's scheme again: ``sentinel`` would bring back kombu's own transport, and
the event channel without its consume step, for the rest of the worker's life.
:func:`use_for_sentinel_urls` makes the scheme name this transport in the worker process
(``consume.worker`` calls it when it picks this transport).
"""

from __future__ import annotations

from typing import Any

from kombu import transport as kombu_transports
from kombu.transport import redis as kombu_redis

from . import transport
from .clients import sentinel_class

SCHEME = "sentinel"


class SentinelChannel(transport.Channel, kombu_redis.SentinelChannel):
    """The event channel of ``transport`` (``serve_events``) whose pool is on the Sentinel master."""

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:  # Any: redis-py's pool (kombu's, untyped)
        # kombu builds redis-py's Sentinel, which takes the first sentinel's answer: the worker
        # finds its master as the fabric's clients do (the newest configuration; ``clients``).
        pool = super()._sentinel_managed_pool(asynchronous)  # type: ignore[misc]  # kombu's, not in its stubs
        pool.sentinel_manager.__class__ = sentinel_class()  # a subclass that adds no state
        return pool


class SentinelTransport(transport.Transport, kombu_redis.SentinelTransport):
    Channel = SentinelChannel


PATH = f"{__name__}:{SentinelTransport.__name__}"


def use_for_sentinel_urls() -> None:
    """Make ``sentinel://`` name :class:`SentinelTransport` in this process (see the module docstring)."""
    kombu_transports.TRANSPORT_ALIASES[SCHEME] = PATH
    # kombu keeps the class it resolved for a name; drop the one it may hold for the scheme
    resolved = getattr(kombu_transports, "_transport_cache", None)
    if isinstance(resolved, dict):
        resolved.pop(SCHEME, None)
