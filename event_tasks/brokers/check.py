"""Start-up check: can this Redis lose events?

Queued events and the subscription table live in Redis. Without AOF a restart forgets both; with
eviction, memory pressure deletes them. Production needs ``appendonly yes``, ``appendfsync
everysec`` (or ``always``) and ``maxmemory-policy noeviction``.

Behind Sentinel (``sentinel://…`` and the transport option ``master_name``) the master the
sentinels name now is checked: set the same on every replica, which a failover makes the master.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..errors import ConfigurationError
from .redis.clients import close_client, redis_client

log = logging.getLogger(__name__)
REQUIRED = {"appendonly": {"yes"}, "appendfsync": {"everysec", "always"}, "maxmemory-policy": {"noeviction"}}


def redis_problems(url: str, transport_options: Mapping[str, object] | None = None) -> list[str]:
    """What is wrong with this Redis (on Sentinel: its master) for events (empty: fine). Raises
    ``redis.RedisError``, and ``ConfigurationError`` for a Sentinel list without ``master_name``."""
    client = redis_client(url, transport_options or {}, socket_connect_timeout=1, socket_timeout=1)
    try:
        problems = []
        for name, allowed in REQUIRED.items():
            value = (client.config_get(name) or {}).get(name)
            if value is not None and value not in allowed:
                problems.append(f"{name} is {value!r}, needs {' or '.join(sorted(allowed))}")
        return problems
    finally:
        close_client(client)


def check_redis(url: str, *, require: bool, transport_options: Mapping[str, object] | None = None) -> list[str]:
    """Warn (or, with ``require``, refuse to start) when Redis can lose queued events."""
    import redis

    try:
        problems = redis_problems(url, transport_options)
    except redis.ResponseError as exc:  # CONFIG disabled (managed Redis): say so, do not guess
        log.warning("could not check Redis persistence settings (%s); make sure the broker persists", exc)
        return []
    except redis.RedisError as exc:
        log.warning("could not reach Redis to check its persistence settings: %s", exc)
        return []
    if problems:
        text = (
            "Redis can lose queued events and subscriptions: "
            + "; ".join(problems)
            + ". Set them in redis.conf (see README, Delivery guarantees)."
        )
        if require:
            raise ConfigurationError(text + " (EVENT_TASKS_REQUIRE_DURABLE_BROKER is on)")
        log.warning(text)
    return problems
