"""The Django app a consuming Open edX service installs (``INSTALLED_APPS += ["event_tasks.openedx"]``):
its ``handlers`` module re-emits the signals of ``EVENT_TASKS_OPENEDX_SIGNALS``."""

from django.apps import AppConfig


class OpenedxConfig(AppConfig):
    name = "event_tasks.openedx"
    label = "event_tasks_openedx"
    verbose_name = "event-tasks: openedx-events backend"
