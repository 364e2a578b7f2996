from django.apps import AppConfig


class StudioConfig(AppConfig):
    """Studio: the tables its event handlers keep in the studio database."""

    name = "consumers.studio"
    label = "studio"
    verbose_name = "Studio (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "studio"  # whose handlers these are, in a process that installs several services
