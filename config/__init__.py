"""The Django project every service runs (one process = one service, see EVENT_TASKS_SERVICE).

The Celery app is ``config.celery_app:app``; event-tasks imports it on first use
(``EVENT_TASKS_CELERY_APP``), so web and shell processes can ``send_event`` too.
"""
