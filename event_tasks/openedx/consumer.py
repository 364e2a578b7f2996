"""``EVENT_BUS_CONSUMER = "event_tasks.openedx.EventTasksConsumer"``: ``consume_events`` runs the service's worker.

``manage.py consume_events -t TOPIC -g GROUP`` builds :class:`EventTasksConsumer` with the topic,
the group and the ``--extra`` JSON; :meth:`~EventTasksConsumer.consume_indefinitely` runs this
service's Celery worker on its event queue ``events.<service>``, in this process, until it is
stopped. What the arguments mean here:

* the group is the consuming service: ``EVENT_TASKS_SERVICE`` (or, when that is unset, the group
  becomes it). Two groups of one service would share one queue and split its events, so a group
  that is not the service is refused;
* the topic selects nothing: the service's queue carries every type of ``EVENT_TASKS_OPENEDX_SIGNALS``
  (and of its own ``@consumer`` handlers). One ``consume_events`` per service is enough; one per
  topic, as before, runs more workers on the same queue;
* ``--extra``: ``concurrency``, ``pool``, ``loglevel``, ``queues`` (more of the host's queues for
  the same worker) are worker options; the Redis and Kafka backends' options (``check_backlog``,
  ``consumer_name``, ``last_read_msg_id`` …) mean nothing here and are logged and ignored.

A worker started as ``celery -A proj worker -Q events.<service>`` does the same without
``consume_events``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from openedx_events.event_bus import EventBusConsumer

from ..conf import check_service_name, settings
from ..errors import ConfigurationError
from ..send.publisher import the_app

log = logging.getLogger(__name__)
WORKER_OPTIONS = {"concurrency": "-c", "pool": "-P", "loglevel": "-l"}


class EventTasksConsumer(EventBusConsumer):
    """Runs the consuming service's event worker for ``consume_events``."""

    def __init__(self, topic: str, group_id: str, **extra: Any) -> None:  # Any: the --extra JSON of consume_events
        self.topic = topic
        self.group_id = group_id
        self.extra = extra

    def service(self) -> str:
        """The consuming service: the group, which must be ``EVENT_TASKS_SERVICE`` when that is set."""
        from django.conf import settings as django_settings

        configured = settings().service
        if configured is None:
            check_service_name(self.group_id)
            django_settings.EVENT_TASKS_SERVICE = self.group_id
            settings.cache_clear()
            return self.group_id
        if configured != self.group_id:
            raise ConfigurationError(
                f"consume_events -g {self.group_id!r}: the group is the consuming service, and this process is "
                f"service {configured!r} (EVENT_TASKS_SERVICE). Run consume_events -g {configured}: every consumer "
                "of a service shares its queue; a second group would split the events, not copy them"
            )
        return configured

    def worker_argv(self) -> list[str]:
        service = self.service()
        if not settings().openedx_signals:
            log.warning("EVENT_TASKS_OPENEDX_SIGNALS is empty: service %s re-emits no openedx-events signal", service)
        queues = [settings().queue_name(service)]
        argv = ["worker", "-n", f"{service}-{os.getpid()}@%h"]
        for name, value in self.extra.items():
            if name in WORKER_OPTIONS:
                argv += [WORKER_OPTIONS[name], str(value)]
            elif name == "queues":
                queues += [value] if isinstance(value, str) else list(value)
            else:
                log.warning("consume_events --extra %s=%r means nothing to event-tasks; ignored", name, value)
        return [*argv, "-Q", ",".join(queues)]

    def consume_indefinitely(self) -> None:
        argv = self.worker_argv()
        log.info("consume_events -t %s -g %s: running celery %s", self.topic, self.group_id, " ".join(argv))
        the_app().worker_main(argv)
