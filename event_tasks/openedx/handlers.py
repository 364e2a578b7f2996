"""The consuming side: the service's worker re-emits its openedx-events signals to their receivers.

Found like every service's handlers (the ``handlers`` module of the installed app
``event_tasks.openedx``): one ``@consumer`` per entry of ``EVENT_TASKS_OPENEDX_SIGNALS`` (event
types or topic patterns of the openedx catalog), all on one function, :func:`reemit`. It turns the
payload back into the signal's data and metadata (``codec``) and sends the signal with
``send_event_with_custom_metadata(metadata, **data)``, so receivers see what the producer's
receivers saw, with ``from_event_bus=True`` (openedx-events does not produce it again).

Every receiver runs on every attempt (openedx-events' ``send_robust``; under ``DEBUG`` the first
failure stops the others). If one raised, :func:`reemit` raises that exception (the others are
logged and named in a note), so the delivery is retried with backoff in this service and, after
the last retry, dead-lettered with the reason: not logged and acknowledged as the Redis and
Kafka backends do. On a retry every receiver runs again: receivers of an event bus must be
idempotent, as they already are for those backends' replays.
"""

from __future__ import annotations

import logging

from edx_django_utils.cache import RequestCache  # type: ignore[import-untyped]  # edx-django-utils ships no types

from ..conf import settings
from ..envelope import Event
from ..handlers import consumer
from .codec import from_payload, signal_for

log = logging.getLogger(__name__)
NAME = "event_tasks.openedx.reemit"  # duplicate suppression keys on it: never rename


def reemit(event: Event) -> None:
    """Send the event's signal to this service's receivers with the producer's metadata."""
    signal = signal_for(event.type)
    metadata, data = from_payload(signal, event.data)
    RequestCache.clear_all_namespaces()  # receivers may rely on a per-request cache, as in a web request
    responses = signal.send_event_with_custom_metadata(metadata, **data)
    failures = [(receiver, result) for receiver, result in responses if isinstance(result, BaseException)]
    if not failures:
        return
    first = failures[0][1]
    if len(failures) > 1:
        others = ", ".join(f"{_name(r)}: {e!r}" for r, e in failures[1:])
        log.error(
            "%d receivers of %s (event %s) raised; retrying for all. Also failed: %s",
            len(failures),
            event.type,
            event.id,
            others,
        )
        first.add_note(f"{len(failures) - 1} other receiver(s) of {event.type} failed too: {others}")
    raise first


def _name(receiver: object) -> str:
    return f"{getattr(receiver, '__module__', '?')}.{getattr(receiver, '__qualname__', receiver)}"


for _pattern in settings().openedx_signals:
    reemit = consumer(_pattern, name=NAME)(reemit)
