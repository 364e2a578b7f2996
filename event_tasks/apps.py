"""The Django app of the fabric (``INSTALLED_APPS += ["event_tasks"]``): its models, admin and checks.

``ready()`` registers the system checks (``checks``) and has every Celery worker of the process
that consumes an event queue wired for it, whether or not the service passed its Celery app to
``event_tasks.app.install`` (``app.watch_workers``): an event queue is never consumed by a worker
that cannot run its events.
"""

from django.apps import AppConfig


class EventTasksConfig(AppConfig):
    name = "event_tasks"
    verbose_name = "Event fabric"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from .app import watch_workers

        watch_workers()
