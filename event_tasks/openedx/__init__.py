"""An openedx-events event bus backend over this fabric (the ``openedx`` extra).

An Open edX service moves from the Redis or Kafka event bus to event-tasks by settings alone
(docs/openedx.md):

* ``EVENT_BUS_PRODUCER = "event_tasks.openedx.create_producer"``: openedx-events' producer
  handler (``EVENT_BUS_PRODUCER_CONFIG``) hands each signal to :class:`EventTasksProducer`, which
  sends it with ``event_tasks.send_event`` (so inside ``transaction.atomic()`` it goes through the
  outbox);
* ``EVENT_BUS_CONSUMER = "event_tasks.openedx.EventTasksConsumer"``: ``manage.py consume_events
  -t TOPIC -g GROUP`` runs the service's event worker (the group is the consuming service);
* ``INSTALLED_APPS += ["event_tasks.openedx"]`` with ``EVENT_TASKS_OPENEDX_SIGNALS``: the worker
  re-emits those signals to the service's receivers under the fabric's retries, duplicate
  suppression and dead letters (``handlers``);
* ``EVENT_TASKS_SCHEMAS_PACKAGE = "event_tasks.openedx.catalog"``: the catalog of every signal
  openedx-events can serialize, with schemas generated from the signals' data classes (``schema``).

Who owns what: ``codec`` turns signal data and metadata into the event payload and back (with
openedx-events' own serializers); ``schema`` generates the marshmallow schemas; ``catalog`` declares
the types; ``producer``, ``consumer`` and ``handlers`` are the three ends above.

May import: core, brokers, store, send, consume, ops.
"""

from __future__ import annotations

from ..errors import OpenedxEventsMissing

try:
    import openedx_events  # noqa: F401
    from openedx_events.event_bus import EventBusConsumer, EventBusProducer  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the unit tests
    raise OpenedxEventsMissing(str(exc)) from exc

from .consumer import EventTasksConsumer
from .producer import EventTasksProducer, create_producer

__all__ = ["EventTasksConsumer", "EventTasksProducer", "create_producer"]
