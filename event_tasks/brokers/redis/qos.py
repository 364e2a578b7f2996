"""The event channel's QoS: kombu's Redis ack emulation, with tracking and acks in batches.

kombu's Redis QoS records every delivery in the ``unacked`` hash and its index (one round trip)
and removes it there on ack (another round trip each). On the event channel (``transport``):

* a delivery the consume step's take script tracked already is only held in memory
  (:meth:`QoS.append`); one kombu's way took (a BLMOVE with room for one) is tracked and moved out
  of the in-flight list in one MULTI/EXEC;
* an ack sent from the event loop's thread is held (:meth:`QoS.ack`): it frees the prefetch window
  at once, and its removal from ``unacked`` goes out with the next take of the queue (the take
  script removes the tags first) or, when no take is sent in that turn of the loop, in one
  pipeline for all of them (:meth:`QoS.flush_acks`, called by the transport's poller at every turn
  and before each delivery once an ack has waited :data:`ACK_HOLD`). The ack is still sent after
  the handler, never before; a worker killed in between has the delivery back after the
  visibility timeout, as with an ack lost to a dropped connection (docs/decisions/0016);
* each restore renews the lease of every delivery the worker holds (:meth:`QoS.renew_leases`).

Every other channel keeps kombu's QoS unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

if TYPE_CHECKING:
    from .transport import Channel

log = logging.getLogger(__name__)

#: seconds an ack may wait for the next take before the next delivery sends it anyway (a slow
#: handler then pays one round trip it does not notice; fast ones share one)
ACK_HOLD = 0.05


def inflight_key(queue: str) -> str:
    return queue + "\x06\x16inflight"


class QoS(kombu_redis.QoS):
    channel: Channel

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.held_acks: list[str] = []  # acked deliveries still in unacked (see the module docstring)
        self.held_since = 0.0

    def append(self, message: virtual.Message, delivery_tag: str) -> None:
        if self.channel._tracked:  # tracked in Redis already, by the TAKE script
            virtual.QoS.append(self, message, delivery_tag)
            return
        taken = self.channel._taken
        if taken is None or not self.channel.events_queue:
            super().append(message, delivery_tag)
            return
        self.channel._taken = None
        queue, item = taken
        delivery = message.delivery_info
        raw = message._raw  # type: ignore[attr-defined]  # kombu's stubs omit the payload a virtual Message keeps
        with self.pipe_or_acquire() as pipe:  # MULTI/EXEC: tracked and out of in-flight, or neither
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key, delivery_tag, dumps([raw, delivery["exchange"], delivery["routing_key"]])
            ).lrem(inflight_key(queue), 1, item).execute()
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if not self.channel.holds_acks():
            super().ack(delivery_tag)
            return
        virtual.QoS.ack(self, delivery_tag)  # out of the prefetch window now
        if not self.held_acks:
            self.held_since = time.monotonic()
        self.held_acks.append(delivery_tag)

    def take_held_acks(self) -> list[str]:
        """The held acks, handed to a take script that removes them (see :meth:`hold_again`)."""
        tags, self.held_acks = self.held_acks, []
        return tags

    def hold_again(self, tags: list[str]) -> None:
        """Acks a take script did not run (refused by Redis): sent with the next take or flush."""
        if tags:
            if not self.held_acks:
                self.held_since = time.monotonic()
            self.held_acks[:0] = tags

    def flush_acks(self, older_than: float = 0.0) -> None:
        """Send the held acks in one pipeline (those held at least ``older_than`` seconds)."""
        if not self.held_acks or (older_than and time.monotonic() - self.held_since < older_than):
            return
        tags = self.take_held_acks()
        try:
            self.remove_tracked(tags)
        except Exception as exc:  # noqa: BLE001 - the loop goes on (kombu's ack_log_error logs and goes on too)
            # As an ack lost to a dropped connection (or refused: a replica after a failover): the
            # deliveries come back after the visibility timeout (duplicate marks skip them).
            log.warning("could not acknowledge %d deliveries of %s: %r", len(tags), self.channel.events_queue, exc)

    def remove_tracked(self, delivery_tags: list[str]) -> None:
        """Remove deliveries from ``unacked`` and its index in one round trip."""
        with self.pipe_or_acquire() as pipe:
            pipe.zrem(self.unacked_index_key, *delivery_tags).hdel(self.unacked_key, *delivery_tags).execute()

    def ack_many(self, delivery_tags: list[str]) -> None:
        """Acknowledge several deliveries in one round trip (a batch, ``batching``)."""
        if delivery_tags:
            self.remove_tracked(delivery_tags)
        for tag in delivery_tags:
            virtual.QoS.ack(self, tag)

    def restore_visible(self, start: int = 0, num: int | None = 10, interval: int = 10) -> None:
        if not self.channel.events_queue:
            super().restore_visible(start, num, interval)  # type: ignore[arg-type]  # kombu takes None: no limit
            return
        self.flush_acks()  # a held ack is never restored as if its delivery had not run
        self.renew_leases()
        lease = getattr(self.channel, "lease", None)  # an ordered service's queue lease (brokers.redis.lease)
        if lease is not None and (other := lease.take()) is not None:
            log.error(
                "%s: the queue's lease went to %s (this worker did not renew it in time): two consumers, "
                "the events of one key may be applied out of order",
                self.channel.events_queue,
                other,
            )
        super().restore_visible(start, num, interval)  # type: ignore[arg-type]  # as above
        if (self._vrestore_count - 1) % (interval or 1):  # type: ignore[attr-defined]  # kombu's count of restores, not in its stubs
            return
        self.channel.sweep_inflight()

    def restore_predecessors(self, stale: float, timeout: float, poll: float = 0.5) -> int:
        """Before an ordered service consumes: put back the deliveries another consumer of the queue
        held and no longer renews (a worker that died, or this worker's channel before a reconnect;
        a live one renews every restore interval), all at once, newest first, so the oldest is next
        in the queue and the later events of their keys are behind them (``consume.ordering``).

        Waits up to ``timeout`` seconds until even the newest lease is ``stale`` seconds old (put
        back in rounds as each went stale, a later round would land ahead of an earlier one).
        Returns how many are held by a consumer that still renews them: a second live consumer
        (docs/ordering.md); they are left to it."""
        deadline = time.monotonic() + timeout
        while True:
            with self.channel.conn_or_acquire() as client:
                ours = set(self._delivered or ())
                ranked: list[tuple[bytes, float]] = client.zrange(self.unacked_index_key, 0, -1, withscores=True)  # type: ignore[assignment]  # redis-py's stubs: any reply; withscores gives (member, score) pairs
                leases = [(tag.decode(), score) for tag, score in ranked if tag.decode() not in ours]
                if not leases:
                    return 0
                if max(score for _, score in leases) < time.time() - stale:
                    for tag, _ in reversed(leases):  # newest first: the oldest ends next in the queue
                        self.restore_by_tag(tag, client)
                    return 0
            if time.monotonic() > deadline:
                return len(leases)
            time.sleep(poll)

    def renew_leases(self) -> None:
        """Mark every message this worker holds (running, reserved, waiting for its ETA) as fresh.

        The restore sweep hands out messages whose ``unacked_index`` score is older than the
        visibility timeout; a live worker renews its own, so a long handler is never given to a
        second consumer while it runs. A dead worker stops renewing and its messages come back.
        """
        tags = list(self._delivered or ())  # in the order taken
        if not tags:
            return
        # 10 µs apart in the order taken: after a crash the restore gives them back in that order
        # (ordered types, consume.ordering), not in the order of their tags
        first = time.time() - LEASE_STEP * len(tags)
        with self.channel.conn_or_acquire() as client:
            client.zadd(self.unacked_index_key, {tag: first + LEASE_STEP * i for i, tag in enumerate(tags)}, xx=True)


LEASE_STEP = 0.00001  # seconds between the lease scores of two held deliveries (take.lua's step too)


def on_loop_thread(hub: object) -> bool:
    """Whether this is the thread of ``hub``'s event loop (kombu's Hub keeps it once running)."""
    return hub is not None and getattr(hub, "_loop_thread", None) == threading.get_ident()
