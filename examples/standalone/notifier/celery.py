"""The notifier's Celery app: ``celery -A notifier worker -Q events.notifier,notifier.work``.

Everything Celery is configured in ``notifier.settings`` under the ``CELERY_`` namespace (the
host's own default queue, exchange and routes). The last two lines are all the event fabric
adds: ``install(app)`` changes nothing of that configuration; a worker whose ``-Q`` names
``events.notifier`` also consumes the notifier's events.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notifier.settings")

app = Celery("notifier")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from event_tasks.app import install  # noqa: E402 - the event fabric: the one added line pair

install(app)
