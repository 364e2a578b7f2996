"""The notifier service: a Django project with its own Celery app (the standard Django + Celery
layout: importing the app here gives web, shell and management-command processes the app that
``send_event`` and ``.delay()`` publish through).
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
