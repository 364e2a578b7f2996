"""Settings of the notifier service (its own, nothing shared with any other service).

The notifier sends learners digests (its own Celery task, on its own queue ``notifier.work``)
and, since it adopted the event fabric, takes the LMS's certificate events on ``events.notifier``.

Environment: ``NOTIFIER_DATABASE_URL`` (default: ``notifier.sqlite3`` next to this project),
``CELERY_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``), ``DJANGO_SECRET_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-notifier-example-key")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "notifier.urls"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "event_tasks",  # the event fabric: dead letters, outbox, processed-event marks
    "notifier.digests",
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("NOTIFIER_DATABASE_URL") or f"sqlite:///{BASE_DIR / 'notifier.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker writes while other processes read: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30

# --- Celery: the host's own choices (install(app) leaves every one of them alone) ----------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "notifier"
CELERY_TASK_DEFAULT_EXCHANGE = "notifier"
CELERY_TASK_ROUTES = {"notifier.tasks.*": {"queue": "notifier.work"}}
CELERY_TASK_ACKS_LATE = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- the event fabric ------------------------------------------------------------------------------
EVENT_TASKS_SERVICE = "notifier"
# The platform's shared catalog of event types, an installed package (required: there is no default).
EVENT_TASKS_SCHEMAS_PACKAGE = "schemas"
