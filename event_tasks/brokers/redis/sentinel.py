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

from kombu import transport as kombu_transports
from kombu.transport import redis as kombu_redis

from . import transport

SCHEME = "sentinel"


class SentinelChannel(transport.Channel, kombu_redis.SentinelChannel):
    """The event channel of ``transport`` (``serve_events``) whose pool is on the Sentinel master."""


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
