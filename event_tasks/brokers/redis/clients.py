"""The fabric's own redis-py clients (publisher, start-up check): a Redis URL or a Sentinel list.

``redis://``, ``rediss://`` and ``redis+socket://`` URLs name one server. kombu's (and Celery's)
``sentinel://h1:26379;sentinel://h2:26379;…`` names the sentinels of a monitored master, whose
name is the transport option ``master_name`` (``CELERY_BROKER_TRANSPORT_OPTIONS``); as in kombu,
the first URL's user, password and database number are the master's, ``sentinel_kwargs``
(e.g. the sentinels' own password) the sentinels' connection arguments and
``min_other_sentinels`` how many peers a sentinel must see for its answer to count.

A client on a Sentinel list asks the sentinels for the master's address on every (re)connect:
after a failover (the master dead, a replica promoted) the next connect finds the new master by
itself; a connection to a master that was demoted answers ``READONLY``, which redis-py turns
into a connection error and a reconnect (``redis.sentinel.SentinelManagedConnection``).
redis-py 8.1 asks only when a connection is taken from the pool: a connection that reconnects in
place (a command's retry, a client that keeps one connection such as the publisher's) dials the
old master again for ever (redis/redis-py#3874); the fabric's connection class asks every time.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kombu.utils.url import url_to_parts

from ...errors import ConfigurationError
from ..topology import shown_url

if TYPE_CHECKING:
    import redis
    from redis.sentinel import Sentinel, SentinelManagedConnection

SENTINEL_SCHEME = "sentinel"
SENTINEL_PORT = 26379  # kombu's default port of a sentinel URL


def is_sentinel(url: str) -> bool:
    """Whether a broker URL (or ``;``-separated list) names Redis through Sentinel."""
    return (url or "").split("://", 1)[0] == SENTINEL_SCHEME


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://`` list and the transport options name."""

    sentinels: list[tuple[str, int]]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_kwargs: dict[str, object] | None = None  # None: the master's socket options (redis-py's default)
    min_other_sentinels: int = 0


def sentinel_target(url: str, transport_options: Mapping[str, object]) -> SentinelTarget:
    """Parse ``sentinel://…;sentinel://…`` with the transport options (``ConfigurationError``
    without ``master_name``, or with an entry that is not a sentinel URL)."""
    parts = [url_to_parts(part.strip()) for part in url.split(";") if part.strip()]
    if not parts or any(p.scheme != SENTINEL_SCHEME for p in parts):
        raise ConfigurationError(
            f"CELERY_BROKER_URL {shown_url(url)!r} mixes sentinel:// with other schemes: list only the sentinels, "
            "'sentinel://h1:26379;sentinel://h2:26379;…', and name the master in the transport options"
        )
    master_name = transport_options.get("master_name")
    if not isinstance(master_name, str) or not master_name:
        raise ConfigurationError(
            "CELERY_BROKER_URL names Redis Sentinel (sentinel://…) but CELERY_BROKER_TRANSPORT_OPTIONS has no "
            "'master_name': set it to the name the sentinels monitor (their `sentinel monitor <name> …` line), "
            "e.g. CELERY_BROKER_TRANSPORT_OPTIONS = {'master_name': 'events'}"
        )
    first = parts[0]
    path = (first.path or "").strip("/")
    if path and not path.isdigit():
        raise ConfigurationError(f"CELERY_BROKER_URL {shown_url(url)!r}: the database after '/' must be a number")
    kwargs = transport_options.get("sentinel_kwargs")
    others = transport_options.get("min_other_sentinels", 0)
    return SentinelTarget(
        sentinels=[(p.hostname or "127.0.0.1", p.port or SENTINEL_PORT) for p in parts],
        master_name=master_name,
        db=int(path or 0),
        username=first.username,
        password=first.password,
        sentinel_kwargs=dict(kwargs) if isinstance(kwargs, Mapping) else None,
        min_other_sentinels=int(others) if isinstance(others, int | str) else 0,
    )


def redis_client(url: str, transport_options: Mapping[str, object], **kwargs: object) -> redis.Redis:
    """A client of the broker's (current) master; ``kwargs``: redis-py's connection arguments
    (timeouts, retry). Connects on first use, so it can be built while the broker is down."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not is_sentinel(url):
        if url.startswith("redis+socket://"):
            url = "unix://" + url[len("redis+socket://") :]
        return redis.Redis.from_url(url, **kwargs)
    target = sentinel_target(url, transport_options)
    sentinel_kwargs = target.sentinel_kwargs
    if sentinel_kwargs is None:  # as redis-py: the sentinels get the master's socket timeouts
        sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    # One try per sentinel: the discovery asks the next one (redis-py's default retries each with
    # backoff, seconds per unreachable sentinel on every reconnect).
    sentinel_kwargs = {"retry": Retry(NoBackoff(), 0), **sentinel_kwargs}
    sentinel_class, connection_class = _sentinel_classes()
    manager = sentinel_class(
        target.sentinels, min_other_sentinels=target.min_other_sentinels, sentinel_kwargs=sentinel_kwargs
    )
    connection: dict[str, Any] = dict(kwargs)  # Any: redis-py's connection arguments, passed through as given
    return manager.master_for(
        target.master_name,
        db=target.db,
        username=target.username,
        password=target.password,
        connection_class=connection_class,
        **connection,
    )


def sentinel_class() -> type[Sentinel]:
    """The fabric's redis-py Sentinel (see ``_sentinel_classes``): the worker's transport uses it too."""
    return _sentinel_classes()[0]


@functools.cache
def _sentinel_classes() -> tuple[type[Sentinel], type[SentinelManagedConnection]]:
    """redis-py's Sentinel (its error shortened) and master connection (asking the sentinels on
    every connect); built on first use: redis is imported when a client is."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

    class FabricSentinelConnection(SentinelManagedConnection):
        """A master connection that connects to the address the sentinels name now, also when it
        reconnects in place (redis-py's own asks only when the pool hands it out)."""

        def _connect_retry(self) -> None:
            if self._sock or not self.connection_pool.is_master:
                super()._connect_retry()
                return
            self.connect_check_health(check_health=self.connection_pool.check_connection, retry_socket_connect=False)

        def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
            if not self._sock and self.connection_pool.is_master:
                self.host, self.port = self.connection_pool.get_master_address()  # MasterNotFoundError: a retry
            super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)

    class FabricSentinel(Sentinel):
        """redis-py's Sentinel that believes the newest configuration, with a short error.

        redis-py takes the first sentinel's answer. Right after a failover a sentinel that has not
        heard of it yet still names the old master, and once that one is back (restarted, empty
        when it has no persistence, still a master until the sentinels turn it into a replica:
        up to 10 s, their INFO period) it is a live master to that sentinel. Writes sent there
        are confirmed, even by ``WAIT`` when a replica follows it for a moment, and dropped when
        it is turned into a replica: the cluster fault test lost 755 events so. Every sentinel
        that answers is asked, and the master of the highest ``config-epoch`` (the one each
        failover raises) wins. redis-py's "no master" error holds the repr of every sentinel
        client (kilobytes in a log line or a ``PublishError``): this one is a short line.
        """

        def discover_master(self, service_name: str) -> tuple[str, int]:
            newest: tuple[int, str, int] | None = None
            for sentinel in self.sentinels:
                try:
                    masters = sentinel.sentinel_masters()
                except (RedisConnectionError, RedisTimeoutError):
                    continue
                state = masters.get(service_name) if isinstance(masters, dict) else None
                if state and self.check_master_state(state, service_name):
                    epoch = int(state.get("config-epoch", 0))
                    if newest is None or epoch > newest[0]:
                        newest = (epoch, state["ip"], int(state["port"]))
            if newest is not None:
                return newest[1], newest[2]
            sentinels = ", ".join(
                "{host}:{port}".format_map(s.connection_pool.connection_kwargs) for s in self.sentinels
            )
            raise MasterNotFoundError(
                f"no sentinel ({sentinels}) names a live master {service_name!r}: a failover in progress, the "
                "sentinels down or unreachable, or a master_name they do not monitor"
            )

    return FabricSentinel, FabricSentinelConnection


def close_client(client: redis.Redis) -> None:
    """Close a client of :func:`redis_client`, and on Sentinel its connections to the sentinels."""
    client.close()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        manager.close()
