"""``EVENT_BUS_PRODUCER = "event_tasks.openedx.create_producer"``: signals go out through ``send_event``.

openedx-events calls :meth:`EventTasksProducer.send` for every (signal, topic) enabled in
``EVENT_BUS_PRODUCER_CONFIG``. The event is sent with ``event_tasks.send_event``: type = the
signal's event type, id = the metadata id, key = the value at ``event_key_field``, payload =
``codec.to_payload``. Inside ``transaction.atomic()`` it goes to the outbox and out after commit.

Routing is by event type, not topic: every service subscribed to the type gets its own copy,
whatever topic the producer names. A signal enabled on two topics is sent twice with one id, and
consumers apply it once (duplicate suppression).
"""

from __future__ import annotations

import logging

from openedx_events.data import EventsMetadata
from openedx_events.event_bus import EventBusProducer
from openedx_events.tooling import OpenEdxPublicSignal

from ..send.publisher import send_event
from .codec import event_key, to_payload

log = logging.getLogger(__name__)


class EventTasksProducer(EventBusProducer):
    """Sends openedx-events signals as event-tasks events (one instance per process)."""

    def send(
        self,
        *,
        signal: OpenEdxPublicSignal,
        topic: str,
        event_key_field: str,
        event_data: dict[str, object],
        event_metadata: EventsMetadata,
    ) -> None:
        try:
            send_event(
                signal.event_type,
                to_payload(signal, event_data, event_metadata),
                key=event_key(event_data, event_key_field),
                id=str(event_metadata.id),
            )
        except Exception:  # openedx-events' serializer raises plain exceptions; send_event EventTasksError
            # openedx-events calls producers from a signal receiver, which send_robust turns into a
            # log line at INFO; say it loudly here, then raise (DEBUG, send_robust=False: the caller sees it).
            log.exception(
                "event-tasks could not send %s (id %s, topic %s)", signal.event_type, event_metadata.id, topic
            )
            raise


def create_producer(*_: object, **__: object) -> EventTasksProducer:
    """The factory ``EVENT_BUS_PRODUCER`` names (openedx-events caches what it returns)."""
    return EventTasksProducer()
