"""The poller of the worker's Redis transport (``transport``): kombu's, with the event channels'
own restore schedule and their held acks sent at every turn of the loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kombu.transport import redis as kombu_redis

if TYPE_CHECKING:
    from kombu.asynchronous import Hub

    from .transport import Channel

log = logging.getLogger(__name__)


class Poller(kombu_redis.MultiChannelPoller):
    """kombu's poller; restores of event channels run on their own schedule (:meth:`restore_events`).

    kombu restores the ``unacked`` hash of the first consuming channel only ("they are not local
    to the channel"); an event channel has a hash of its own, so the host's channels are left to
    kombu and each event channel is restored separately.
    """

    _channels: set[kombu_redis.Channel]  # kombu's: the channels it polls
    _events_restore_tref: Any = None  # Any: the timer entry kombu's hub returns (untyped in its stubs)
    hub: Hub | None = None  # the event loop the transport is registered with (acks are held only there)

    def __init__(self) -> None:
        super().__init__()
        self.events_channels: set[Channel] = set()

    @property
    def _host_channels(self) -> set[kombu_redis.Channel]:
        return {c for c in self._channels if c not in self.events_channels}

    def maybe_restore_messages(self) -> None:
        channels = self._channels
        try:
            self._channels = self._host_channels
            return super().maybe_restore_messages()
        finally:
            self._channels = channels

    def on_poll_init(self, poller: object) -> None:
        channels = self._channels
        try:
            self._channels = self._host_channels
            result = super().on_poll_init(poller)
        finally:
            self._channels = channels
        self.poller = poller
        self.restore_events()
        return result

    def on_poll_start(self) -> None:
        """Every turn of the loop: start the takes (each carries its channel's held acks), then
        send the acks no take carried in one pipeline per channel."""
        super().on_poll_start()
        for channel in self.events_channels:
            channel.qos.flush_acks()

    def restore_events(self) -> None:
        for channel in list(self.events_channels):
            if not channel.active_queues:
                continue
            try:
                channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)
            except channel.connection_errors:
                log.debug("event restore: connection error, will retry on the next sweep", exc_info=True)
