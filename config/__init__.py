"""The Django project every demo service runs (one process = one service, see EVENT_TASKS_SERVICE).

Importing the Celery app here (the usual Django + Celery layout) gives web, shell and management
command processes the app that ``send_event`` publishes through.
"""

from .celery_app import app as celery_app

__all__ = ["celery_app"]
