"""The fabric's housekeeping as a Celery task, for a host that asks for it (its own beat schedule).

Nothing is added to the host's app unless the host calls :func:`add_prune_task` (decision 0005:
the library never changes the host's app on its own). The work itself is ``retention.prune``;
``python manage.py events prune`` does the same from cron. This module imports before Django is
set up (a host's ``celery.py`` imports it), so the models are imported only when the task runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery, Task

PRUNE_TASK = "event_tasks.prune"


def add_prune_task(app: Celery, name: str = PRUNE_TASK) -> Task[[], dict[str, object]]:
    """Register the prune task on the host's app; returns it. Schedule it with :func:`beat_entry`
    on a queue that a worker **of this service** consumes (each service prunes its own database)."""
    if name in app.tasks:
        return app.tasks[name]

    def prune_events() -> dict[str, object]:
        from .store.retention import prune

        transport = app.conf.broker_transport_options or {}
        return prune(visibility_timeout=transport.get("visibility_timeout")).as_dict()

    return app.task(name=name, ignore_result=True, shared=False)(prune_events)


def beat_entry(every: float = 3600.0, queue: str | None = None, name: str = PRUNE_TASK) -> dict[str, object]:
    """A ``beat_schedule`` entry for the prune task, every ``every`` seconds, sent to ``queue``."""
    entry: dict[str, object] = {"task": name, "schedule": every}
    if queue:
        entry["options"] = {"queue": queue}
    return entry
