"""The Celery app of every service: ``celery -A config.celery_app worker -Q events.<service>``.

Configuration comes from Django settings (``CELERY_*``); ``event_tasks.app.install`` adds the
fabric (JSON only, the service's queue and event tasks, dead letters).
"""
import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup()

from event_tasks.app import install  # noqa: E402  (needs Django set up)

app = Celery("event_tasks")
app.config_from_object("django.conf:settings", namespace="CELERY")
install(app)
