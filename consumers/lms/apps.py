from django.apps import AppConfig


class LmsConfig(AppConfig):
    """LMS: the tables its event handlers keep in the lms database."""

    name = "consumers.lms"
    label = "lms"
    verbose_name = "LMS (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "lms"  # whose handlers these are, in a process that installs several services
