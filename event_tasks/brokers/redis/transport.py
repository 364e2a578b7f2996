"""kombu's Redis transport, with a consume step that cannot lose a message.

kombu takes a message with ``BRPOP`` and only afterwards, in another round trip, records it in
the ``unacked`` hash. A worker killed between the two, or a Redis shutdown that executes the pop
but never sends the reply, loses the message for good (the fault suite caught both). Here:

* the worker takes a message with ``BLMOVE <queue> <queue>␆␖inflight`` (atomic); the take script
  (``take.lua``) moves it into ``unacked`` and takes more of the queue straight into ``unacked``,
  within the prefetch window (with room for one only, one MULTI/EXEC tracks it instead);
* while the queue keeps the window full, the next take is that script alone, without a BLMOVE,
  and it carries the acks the worker sent since the last one (``qos``): one round trip per
  window of messages instead of one per take, per track and per ack;
* a sweep (on kombu's restore schedule) puts back in-flight messages that no consumer claimed
  within a grace period: those whose consumer died in between;
* on the same schedule the worker renews the lease (``unacked_index`` score) of every message it
  holds, so the visibility timeout only ever hands out messages of dead workers, never a long
  handler's that is still running;
* after a lost connection, acks and restores through the old channel fail as connection errors
  (Celery logs them and reconnects) instead of killing the worker with AttributeError.

All of this applies only to the channel the worker's event intake (``intake.py``) opens for its
service's queue, configured by :meth:`Channel.serve_events` with an ``unacked`` hash, visibility
timeout and restore schedule of the service's own. Every other channel (the host's task
consumer, producers, Celery's control and events) behaves exactly like kombu's. The transport is
used by a worker that consumes an event queue on Redis (``event_tasks.app``); needs Redis ≥ 6.2.
See docs/decisions/0004-redis-consume-and-connection-loss.md and 0005-leave-the-host-alone.md.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from importlib import resources
from queue import Empty
from typing import TYPE_CHECKING, Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.objects import cached_property
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from .items import deliverable, delivery_tag, read_message
from .poller import Poller
from .qos import ACK_HOLD, QoS, inflight_key, on_loop_thread

if TYPE_CHECKING:
    import redis
    from kombu import Connection
    from kombu.asynchronous import Hub
    from redis.commands.core import Script

log = logging.getLogger(__name__)
_QoS = QoS  # the name QoS inside Channel is its class attribute

INFLIGHT = "\x06\x16inflight"  # the in-flight list of a queue: inflight_key(queue)
SEEN = "\x06\x16inflight_seen"

# The sweep puts back in-flight messages no consumer claimed within the grace period; the take
# tracks the message a BLMOVE took (if any), takes more and removes acked deliveries in one
# atomic step (see each script).
SWEEP = resources.files(__package__).joinpath("sweep.lua").read_text()
TAKE = resources.files(__package__).joinpath("take.lua").read_text()
MAX_TAKE = 100  # messages taken in one round trip, within the prefetch window


def kombu_message(item: bytes | str) -> dict[str, object] | None:
    """The queue item decoded, if it is a kombu message (JSON with a delivery tag, as TAKE checks
    it); ``None`` if it is anything else."""
    message = read_message(item)
    return message if message is not None and delivery_tag(message) is not None else None


def tracked_message(item: bytes | str) -> dict[str, object]:
    """An item TAKE tracked, decoded (it has a delivery tag, as Lua's cjson reads it); one kombu's
    JSON cannot read (cjson and Python's json disagree on it) fails the take step, as kombu would."""
    message = kombu_message(item)
    if message is None:
        raise ValueError(f"a tracked queue item is not a kombu message: {item[:200]!r}")
    return message


class Channel(kombu_redis.Channel):
    QoS = QoS
    qos: _QoS
    connection: Transport
    connection_errors: tuple[type[BaseException], ...]  # kombu's: the transport's, copied at init
    #: an in-flight message unclaimed this long belongs to a consumer that died
    inflight_grace = 30.0
    #: the event queue this channel serves (set by :meth:`serve_events`); ``None``: a plain kombu channel
    events_queue: str | None = None
    on_unreadable: Callable[[bytes], object] | None = (
        None  # set by the intake: records an item that is not a kombu message
    )
    _taken: tuple[str, bytes] | None = None
    _tracked: bool = False
    _blmove_queue: str | None = None
    _take_next = False  # the last take filled the prefetch window: take again without waiting
    _take_sent: tuple[int, list[str]] | None = None  # a take on its way: (room, the acks it carries)

    def serve_events(
        self,
        queue: str,
        *,
        visibility_timeout: float,
        mutex_expire: float,
        on_unreadable: Callable[[bytes], object] | None = None,
    ) -> None:
        """Make this channel the crash-safe consumer of one event queue (before it consumes)."""
        self.events_queue = queue
        self.on_unreadable = on_unreadable
        self.visibility_timeout = visibility_timeout  # type: ignore[assignment]  # kombu's stubs say int; any number of seconds does
        # Each service restores only its own unacked messages, on its own schedule.
        self.unacked_key = f"unacked:{queue}"
        self.unacked_index_key = f"unacked_index:{queue}"
        self.unacked_mutex_key = f"unacked_mutex:{queue}"
        # A sweep that dies holding the restore mutex (broker restart) blocks every later sweep
        # until the mutex expires: kombu's default is 300 s.
        self.unacked_mutex_expire = mutex_expire  # type: ignore[assignment]  # as visibility_timeout
        self.unacked_restore_throttle = 1
        self.priority_steps = [0]
        self.connection.cycle.events_channels.add(self)

    def close(self) -> None:
        cycle = getattr(self.connection, "cycle", None)  # None once the transport is detached
        if cycle is not None:
            cycle.events_channels.discard(self)
        qos = getattr(self, "_qos", None)
        if isinstance(qos, QoS) and not self.closed:
            qos.flush_acks()  # before kombu restores what the channel still holds
        super().close()

    _kept_client: redis.Redis | None = None  # the redis client this channel keeps (see conn_or_acquire)

    @contextlib.contextmanager
    def conn_or_acquire(self, client: redis.Redis | None = None) -> Iterator[redis.Redis]:
        """kombu builds a new redis client object for every ack, track, restore and task-event
        publish (about half a millisecond each, measured); each channel keeps one, on the same
        connection pool (a redis client takes a pooled connection per command: thread-safe)."""
        if client:
            yield client
            return
        cached = self._kept_client
        if cached is None or cached.connection_pool is not self.pool:
            cached = self._kept_client = self._create_client()  # type: ignore[attr-defined]  # kombu's, not in its stubs
        yield cached

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:  # Any: redis-py's connection keywords
        # After a lost connection Celery collects it (detaching the transport) and then closes it;
        # restoring or acking through this channel then found no connection info and raised
        # AttributeError, which kills the worker. A connection error is what it is: Celery logs
        # it and goes on, and the messages stay in ``unacked`` until the sweep restores them.
        if self.connection.client is None and self.events_queue:
            raise RedisConnectionError("broker connection closed; reconnecting")
        return super()._connparams(asynchronous)  # type: ignore[misc]  # kombu's, not in its stubs

    def _atomic_consume(self, queues: list[str]) -> bool:
        return (
            self.events_queue is not None
            and queues == [self.events_queue]
            and not self.global_keyprefix
            and self._server_supports_blmove
        )

    @cached_property
    def _server_supports_blmove(self) -> bool:
        version = self.client.info("server").get("redis_version", "0")
        supported = tuple(int(p) for p in version.split(".")[:2]) >= (6, 2)
        if not supported:
            log.warning("Redis %s has no BLMOVE: consuming with kombu's BRPOP (not crash-safe)", version)
        return supported

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = list(self.active_queues)
        if not self._atomic_consume(queues):
            self._blmove_queue = None
            super()._brpop_start(timeout)  # type: ignore[misc]  # kombu's, not in its stubs
            return
        if timeout is None:
            timeout = self.brpop_timeout
        queue = queues[0]
        self._blmove_queue = queue
        self._in_poll = connection = self.client.connection
        self._brpop_sent_at = time.monotonic()
        if not self._take_next:  # the queue was empty: wait for a message
            connection.send_command("BLMOVE", queue, inflight_key(queue), "RIGHT", "LEFT", timeout or 0)
            return
        # The last take filled the prefetch window: take what the window has room for now, straight
        # into unacked, without waiting (the held acks go with it).
        room = self._room()
        acks = self.qos.take_held_acks()
        self._take_sent = (room, acks)
        try:
            connection.send_command(
                "EVALSHA", self._take.sha, 4, *self._take_keys(queue), time.time(), room, 0, "", *acks
            )
        except BaseException:
            self._take_sent = None
            self.qos.hold_again(acks)
            raise

    def _room(self) -> int:
        room = self.qos.can_consume_max_estimate()
        return MAX_TAKE if room is None else max(1, min(MAX_TAKE, room))

    def _take_keys(self, queue: str) -> list[str]:
        return [queue, inflight_key(queue), self.unacked_key, self.unacked_index_key]

    def _brpop_read(self, **options: Any) -> bool:  # Any: redis-py's parse_response options, passed on
        queue = self._blmove_queue
        if queue is None:
            return super()._brpop_read(**options)  # type: ignore[misc]  # kombu's, not in its stubs
        try:
            sent, self._take_sent = self._take_sent, None
            if sent is not None:
                self._read_take(queue, *sent, **options)
            else:
                self._read_blmove(queue, **options)
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]  # kombu's, not in its stubs
        if self._take_next and self.qos.can_consume() and not self._closing and not self.closed:  # type: ignore[attr-defined]  # kombu's _closing, not in its stubs
            # Send the next take now, with the acks of what was just delivered: it runs in Redis
            # while the loop's next turn flushes Celery's task events, instead of after them.
            self._brpop_start()
        return True

    def _read_blmove(self, queue: str, **options: Any) -> None:  # Any: as _brpop_read
        try:
            item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
        except self.connection_errors:
            self.client.connection.disconnect()
            raise
        if item is None:
            raise Empty()
        room = self._room()
        single = kombu_message(item) if room <= 1 else None
        if single is not None and deliverable(single):  # room for this one message only: kombu's way (decoded once)
            self._taken = (queue, item)
            self._take_next = True
            try:
                self.connection._deliver(single, queue)
            finally:
                self._taken = None
            return
        acks = self.qos.take_held_acks()
        try:
            with self.conn_or_acquire() as client:
                taken, unreadable = self._take(
                    keys=self._take_keys(queue), args=[time.time(), room, 1, item, *acks], client=client
                )
        except BaseException:
            self.qos.hold_again(acks)
            raise
        self._deliver_taken(queue, taken, unreadable, room)

    def _read_take(self, queue: str, room: int, acks: list[str], **options: Any) -> None:  # Any: as _brpop_read
        """The reply of a take sent without waiting (:meth:`_brpop_start`)."""
        connection = self.client.connection
        try:
            taken, unreadable = self.client.parse_response(connection, "EVALSHA", **options)
        except self.connection_errors:
            connection.disconnect()
            raise
        except ResponseError as exc:  # the script did not run: neither the acks nor the take
            self.qos.hold_again(acks)
            if isinstance(exc, NoScriptError):  # Redis restarted: load it again, take on the next turn
                with self.conn_or_acquire() as client:
                    client.script_load(TAKE)
            else:
                self._take_next = False  # kombu's way next: wait with BLMOVE (its take reports the error)
                log.warning("taking from %s failed: %r", queue, exc)
            raise Empty() from None
        if not taken and not unreadable:
            self._take_next = False
            raise Empty()
        self._deliver_taken(queue, taken, unreadable, room)

    def _deliver_taken(self, queue: str, taken: list[bytes], unreadable: list[bytes], room: int) -> None:
        """Deliver what a take script tracked (after recording what it could not read)."""
        self._take_next = len(taken) + len(unreadable) >= room  # the window is full: more may wait
        if unreadable:
            with self.conn_or_acquire() as client:
                for raw in unreadable:
                    self.refuse_unreadable(client, queue, raw)
        # Every message is tracked in unacked now. Hold them all in the channel's QoS before the
        # first is delivered (a solo pool runs that task right away): the live worker renews
        # their leases and restores the ones it never delivered if it shuts down.
        # Until its delivery replaces it with its Message, each is held as its payload: kombu's
        # Redis QoS reads only the tags of what it holds (restores, renewals), never the messages.
        payloads = []
        for raw in taken:
            payload = tracked_message(raw)
            if deliverable(payload):
                payloads.append(payload)
            else:  # tagged, but kombu would raise making a message of it
                self.refuse_tracked(queue, raw, payload)
        qos = self.qos
        for payload in payloads:
            virtual.QoS.append(qos, payload, payload["properties"]["delivery_tag"])  # type: ignore[index]  # a placeholder (above); tracked_message checked the tag
        self._tracked = True
        try:
            for payload in payloads:
                qos.flush_acks(older_than=ACK_HOLD)  # a slow handler before: its ack goes now
                self.connection._deliver(payload, queue)
        finally:
            self._tracked = False

    def holds_acks(self) -> bool:
        """Whether an ack is held for the next take (:class:`~.qos.QoS`): an event channel, acking
        from its event loop's thread (where the next turn of the loop sends it)."""
        return self.events_queue is not None and on_loop_thread(getattr(self.connection.cycle, "hub", None))

    def refuse_unreadable(self, client: redis.Redis, queue: str, raw: bytes) -> None:
        """An item of the event queue that is not a kombu message: ``on_unreadable(raw)`` records
        it (the intake: a dead letter); then it leaves in-flight. If it could not be recorded it
        stays there, and the sweep puts it back in the queue after the grace period."""
        recorded = False
        if self.on_unreadable is not None:
            try:
                recorded = bool(self.on_unreadable(raw))
            except Exception:  # the consumer goes on; the item is not lost
                log.exception("recording an unreadable item of %s failed", queue)
        else:
            log.error("%s holds an item that is not a kombu message (nothing records it): %r", queue, raw[:200])
        if recorded:
            client.lrem(inflight_key(queue), 1, raw)  # type: ignore[arg-type]  # redis-py takes bytes; its types say str

    def refuse_tracked(self, queue: str, raw: bytes, payload: dict[str, object]) -> None:
        """A tracked item kombu cannot deliver: recorded like an unreadable one, then it leaves unacked
        (as an ack would take it); if it could not be recorded it stays there, and comes back after the
        visibility timeout."""
        recorded = False
        try:
            recorded = self.on_unreadable is not None and bool(self.on_unreadable(raw))
        except Exception:  # the consumer goes on; the item is not lost
            log.exception("recording an unreadable item of %s failed", queue)
        if recorded:
            tag = delivery_tag(payload)
            with self.conn_or_acquire() as client:
                client.zrem(self.unacked_index_key, tag)  # type: ignore[arg-type]  # tracked: a string tag
                client.hdel(self.unacked_key, tag)  # type: ignore[arg-type]  # as above
        else:
            log.error("%s holds an item kombu cannot deliver (left to come back): %r", queue, raw[:200])

    def sweep_inflight(self) -> int:
        grace = min(self.inflight_grace, float(self.visibility_timeout))
        restored = 0
        with self.conn_or_acquire() as client:
            for queue in self.active_queues:
                restored += self._sweep(
                    keys=[inflight_key(queue), self.unacked_key, queue + SEEN, queue],
                    args=[time.time(), grace],
                    client=client,
                )
        if restored:
            log.warning(
                "restored %d message(s) a dead consumer had taken from %s", restored, ", ".join(self.active_queues)
            )
        return restored

    @cached_property
    def _sweep(self) -> Script:
        return self._create_client().register_script(SWEEP)  # type: ignore[attr-defined]  # kombu's, not in its stubs

    @cached_property
    def _take(self) -> Script:
        return self._create_client().register_script(TAKE)  # type: ignore[attr-defined]  # kombu's, not in its stubs


class Transport(kombu_redis.Transport):
    Channel = Channel
    cycle: Poller
    #: seconds between restores of event channels (set by the worker's start-up, ``app``)
    events_restore_interval: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # Any: kombu's Transport arguments, passed on
        super().__init__(*args, **kwargs)
        self.cycle = Poller()

    def register_with_event_loop(self, connection: Connection, loop: Hub) -> None:
        super().register_with_event_loop(connection, loop)
        cycle = self.cycle
        cycle.hub = loop
        old = cycle._events_restore_tref
        if old is not None:
            old.cancel()
        cycle._events_restore_tref = loop.call_repeatedly(
            max(0.5, float(self.events_restore_interval)), cycle.restore_events
        )
