"""event-tasks: send an event once; every subscribed service gets its own durable copy.

Public API (kept small; docs/architecture.md, "Public API"):

* :func:`send_event` — validate and publish one event; :func:`send_events` — several, as one batch;
* :func:`consumer` — mark a plain function as a handler of an event type or pattern;
* :class:`Event` — what handlers receive and ``send_event`` returns.

Errors are in :mod:`event_tasks.errors`; the catalog is :mod:`event_tasks.catalog`.
"""

from importlib.metadata import version as _version

from .envelope import Event
from .handlers import consumer
from .send.publisher import send_event, send_events

#: The installed distribution's version (``event-tasks``; the package is always installed, editable in
#: this repository). Not in ``__all__``: ``from event_tasks import *`` brings the API only.
__version__ = _version("event-tasks")

__all__ = ["Event", "consumer", "send_event", "send_events"]
