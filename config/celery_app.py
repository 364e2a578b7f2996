"""The Celery app of every demo service: ``celery -A config.celery_app worker -Q events.<service>``.

This is the usual Django + Celery layout (``config/__init__.py`` imports it, so web and shell
processes have it too); ``install(app)`` is the one line event-tasks adds. It changes nothing of
the app's own configuration: a worker whose ``-Q`` names ``events.<service>`` consumes that
service's events beside whatever else it consumes.
"""

import os

from celery import Celery

from event_tasks.app import install
from event_tasks.maintenance import add_prune_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
install(app)
# `events prune` as a task, for the beat schedule in settings (CELERY_BEAT_SCHEDULE): the demo asks for it.
add_prune_task(app)
