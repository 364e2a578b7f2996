"""Fan-out on Redis: one EVALSHA of ``fanout.lua`` per event (or per chunk of a batch).

The script routes by the live subscription table (kombu's binding set) and LPUSHes a copy to each
matching queue atomically, each with its own task id and delivery tag, through the default
exchange (so retries, acks and restores stay in that service). A batch is a pipeline of such
calls, up to ``CHUNK_EVENTS`` events each (one LPUSH per queue). A type's queues are worked out
from the whole table once and kept in Redis beside it (``ROUTES_KEY``) until the table changes:
a send costs the same with 3 bindings in the table or 1,000 (docs/decisions/0014).

The broker is one Redis URL or a Sentinel list (``clients``): on Sentinel the script runs on the
current master, and after a failover the next (re)connect finds the promoted replica; a master
without the script (a new one) answers NOSCRIPT and the script is loaded again (redis-py's
``Script``, and :meth:`RedisFanout._evalsha_and_wait`).

With ``EVENT_TASKS_REDIS_WAIT_REPLICAS = N`` every publish, batch and replayed copy is followed on
the same connection, in the same round trip, by ``WAIT N <timeout ms>``; fewer than N replicas
confirming in time is :class:`~event_tasks.errors.ReplicasBehind` (a ``PublishError`` for the
sender). WAIT only counts on the connection that wrote: a reconnect between the script and the
WAIT would count nothing, so both go in one pipeline, and a retried pipeline sends both again.

Behind Sentinel, the replicas' WAIT is not enough: a master the sentinels deposed (a failover it
did not see: a partition, or a master too busy to answer their pings in time) keeps taking writes,
its replicas keep confirming them, until the sentinels turn it into a replica, ~10 s later, and
it drops them (the cluster fault test lost 849 confirmed events so). After the WAIT, the sentinels
are asked which master holds the newest configuration (``clients.FabricSentinel``); a publish is
confirmed only if that is still the node it was written to, else it is
:class:`~event_tasks.errors.MasterDeposed` (the connection is dropped: the next attempt finds the
new master).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from ...conf import Settings
from ...errors import BatchRefused, MasterDeposed, ReplicasBehind
from ..archive import archive_name, envelope_time
from ..message import QUEUE_SLOT, SERVICE_SLOT, Prepared, RedisMessageTemplate
from ..topology import BINDING_KEY, ROUTES_KEY
from .clients import close_client, redis_client

if TYPE_CHECKING:
    import redis

FANOUT_LUA = resources.files(__package__).joinpath("fanout.lua").read_text()
# Events per script call of a batch (and bytes, roughly): Redis runs one script at a time, so a
# call stays short (~1 ms) and Lua's unpack() stays far below its argument limit.
CHUNK_EVENTS = 100
CHUNK_BYTES = 1 << 20
# How long the script may route by the queues it worked out before it reads the whole table again,
# when nothing says the table changed (its size is the same and no tool of ours dropped the routes).
ROUTES_MAX_AGE = 1.0


def script_args(
    args: list[str], event_type: str, slots: str, pieces: list[str], archived: tuple[str, str] | None = None
) -> None:
    """Append one event to ``fanout.lua``'s arguments: its type, its slots, its message cut at them
    (the script only joins pieces: cutting a 2 KB message in Lua cost ~6 µs per event); with the
    archive on, ``archived`` = (event id, task body) and the envelope's time (docs/archive.md)."""
    args.append(event_type)
    args.append(slots)
    args += pieces
    if archived is not None:
        args += (archived[0], archived[1], envelope_time(archived[1]))


class RedisFanout:
    """Per-queue copies pushed atomically by a Lua script reading the live binding set."""

    def __init__(self, url: str, transport_options: Mapping[str, object], conf: Settings) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self.wait_replicas = conf.redis_wait_replicas
        self.wait_timeout = conf.redis_wait_timeout
        self.wait_ms = max(1, round(conf.redis_wait_timeout * 1000))  # WAIT's 0 would wait for ever
        self.client = redis_client(
            url,
            transport_options,
            socket_connect_timeout=conf.publish_timeout,
            # a reply may wait for the replicas (WAIT) before it comes
            socket_timeout=conf.publish_timeout + (conf.redis_wait_timeout if self.wait_replicas > 0 else 0),
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), conf.publish_retries),
            retry_on_timeout=True,
        )
        self._single: redis.Redis | None = None  # the client of single sends, connected on first use
        keyprefix = transport_options.get("global_keyprefix", "") or ""
        assert isinstance(keyprefix, str)  # kombu's key prefix: a str (the + below already relies on it)
        self.keyprefix = keyprefix
        self.binding_key = self.keyprefix + BINDING_KEY.format(exchange=conf.exchange)
        self.keys = [self.binding_key, self.keyprefix + ROUTES_KEY.format(exchange=conf.exchange)]
        # the archive (EVENT_TASKS_ARCHIVE_DAYS): a stream the script appends each event to once
        self.archive_ms = "" if conf.archive_days is None else str(round(conf.archive_days * 86_400_000))
        if conf.archive_days is not None:
            self.keys.append(self.keyprefix + archive_name(conf))
        self.routes_max_age = str(round(ROUTES_MAX_AGE * 1_000_000))
        self.queue_prefix = conf.queue_prefix
        self.script = self.client.register_script(FANOUT_LUA)
        self.template = RedisMessageTemplate()
        pool = self.client.connection_pool
        # behind Sentinel with the replica wait: each publish is confirmed on the sentinels' master only
        self.sentinels = getattr(pool, "sentinel_manager", None) if self.wait_replicas > 0 else None
        self.service_name: str = getattr(pool, "service_name", "")
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, ReplicasBehind, MasterDeposed)
        # replicas behind: the broker's state, not the message's (the relay backs off, keeps the rows)
        self.connection_errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
            ReplicasBehind,
            MasterDeposed,
        )

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int:
        args = self.head()
        pieces = self.template.pieces(event_type, event_id, body, argsrepr)
        script_args(args, event_type, self.template.SLOTS, pieces, (event_id, body) if self.archive_ms else None)
        if self.wait_replicas > 0:
            return self._evalsha_and_wait(args)[0]
        return self.script(keys=self.keys, args=args, client=self.single())[0]

    def head(self) -> list[str]:
        """The script's first arguments, before the events."""
        return [self.queue_prefix, self.keyprefix, self.routes_max_age, self.archive_ms]

    def _evalsha_and_wait(self, args: list[str]) -> list[int]:
        """The script and ``WAIT`` in one pipeline (one connection, one round trip); the script
        loaded again when this master lacks it (NOSCRIPT: a new master after a failover)."""
        from redis.exceptions import NoScriptError

        for attempt in (1, 2):
            pipe = self.pipeline()
            pipe.evalsha(self.script.sha, len(self.keys), *self.keys, *args)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms)
            connection = pipe.connection
            counts, acknowledged = pipe.execute(raise_on_error=False)
            if isinstance(counts, NoScriptError) and attempt == 1:
                self.client.script_load(self.script.script)
                continue
            if isinstance(counts, Exception):
                raise counts
            self.check_wait(acknowledged, connection)
            return counts
        raise AssertionError("unreachable: the second attempt returns or raises")

    def pipeline(self) -> redis.client.Pipeline:
        """A pipeline holding its connection from the start (a pipeline takes one when it runs):
        :meth:`check_wait` needs to know which node the writes went to."""
        pipe = self.client.pipeline(transaction=False)
        if self.sentinels is not None:
            pool, retry = self.client.connection_pool, self.client.get_retry()
            # with the client's retries, as a pipeline's own connect has them (a failover in progress)
            take = pool.get_connection
            pipe.connection = retry.call_with_retry(take, lambda error: None) if retry else take()  # released by reset
        return pipe

    def check_wait(self, acknowledged: object, connection: redis.connection.AbstractConnection | None = None) -> None:
        """Raise :class:`ReplicasBehind` when a ``WAIT`` reply is fewer than the replicas asked for;
        behind Sentinel, :class:`MasterDeposed` when the node written to (``connection``'s) is no
        longer the master of the newest configuration."""
        if isinstance(acknowledged, Exception):
            raise acknowledged
        assert isinstance(acknowledged, int)  # WAIT's reply: an integer
        if acknowledged < self.wait_replicas:
            raise ReplicasBehind(acknowledged, self.wait_replicas, self.wait_timeout)
        if self.sentinels is None or connection is None:
            return
        written_to = (getattr(connection, "host", None), getattr(connection, "port", None))
        master = self.sentinels.discover_master(self.service_name)
        if (written_to[0], int(written_to[1] or 0)) != (master[0], int(master[1])):
            connection.disconnect()  # its next command connects to the master the sentinels name
            raise MasterDeposed(f"{written_to[0]}:{written_to[1]}", f"{master[0]}:{master[1]}")

    def single(self) -> redis.Redis:
        """A client that keeps one connection (locked per command) on the same pool: a send does not
        take a connection from the pool and give it back (~7% of a send, measured). Connected on
        first use, so a publisher can be built while the broker is down."""
        single = self._single
        if single is None:
            single = self._single = self.client.__class__(
                connection_pool=self.client.connection_pool, single_connection_client=True
            )
        return single

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        message = self.template.render(event_type, event_id, body, argsrepr)
        copy = message.replace(SERVICE_SLOT, service).replace(QUEUE_SLOT, queue)
        if self.wait_replicas <= 0:
            self.client.lpush(self.keyprefix + queue, copy)
            return
        pipe = self.pipeline()
        pipe.lpush(self.keyprefix + queue, copy)
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms)
        connection = pipe.connection
        self.check_wait(pipe.execute()[1], connection)

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """One round trip: a pipeline of script calls, each for a chunk of events (their copies
        pushed atomically, one LPUSH per queue); a chunk the broker refuses fails alone."""
        pipe = self.pipeline() if self.wait_replicas > 0 else self.client.pipeline(transaction=False)
        connection = pipe.connection
        chunks: list[range] = []
        start, size = 0, 0
        for i, item in enumerate(batch):
            size += len(item.body)
            if i + 1 == len(batch) or i + 1 - start >= CHUNK_EVENTS or size >= CHUNK_BYTES:
                args = self.head()
                for j in range(start, i + 1):
                    item = batch[j]
                    archived = (item.event_id, item.body) if self.archive_ms else None
                    script_args(args, item.event_type, self.template.SLOTS, self.template.pieces(*item), archived)
                self.script(keys=self.keys, args=args, client=pipe)
                chunks.append(range(start, i + 1))
                start, size = i + 1, 0
        if self.wait_replicas > 0:
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms)
        results = pipe.execute(raise_on_error=False)
        if self.wait_replicas > 0:  # none of the batch is confirmed unless the replicas have it all
            self.check_wait(results.pop(), connection)
        counts: list[int | None] = [None] * len(batch)
        failed: dict[int, BaseException] = {}
        for chunk, result in zip(chunks, results):
            for j, i in enumerate(chunk):
                if isinstance(result, Exception):
                    failed[i] = result
                else:
                    counts[i] = result[j]
        if failed:
            if len(failed) == len(batch):
                raise failed[0]
            raise BatchRefused([i for i in range(len(batch)) if i not in failed], failed)
        return counts

    def close(self) -> None:
        if self._single is not None:
            self._single.close()
        close_client(self.client)
