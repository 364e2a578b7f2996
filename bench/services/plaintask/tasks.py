"""Plain Celery inside this Django project: a no-op task named after the event type, found by
``config.celery_app``'s ``autodiscover_tasks`` when the process is service ``plaintask``.

Its worker (``celery -A config.celery_app worker -Q plaintask`` with
``EVENT_TASKS_SERVICE=plaintask``) has the project's Celery settings (result backend, task events,
database connection reuse) but no event-tasks consumer: the comparator that tells the host's
configuration apart from the fabric's own cost.
"""

from celery import shared_task

from bench.services import count

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"


@shared_task(name=CERTIFICATE_CREATED, acks_late=True, reject_on_worker_lost=True)
def certificate_created(envelope, data):
    count()
