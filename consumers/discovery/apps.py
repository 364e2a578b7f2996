from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    """Course discovery: the tables its event handlers keep in the discovery database."""

    name = "consumers.discovery"
    label = "discovery"
    verbose_name = "Course discovery (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "discovery"  # whose handlers these are, in a process that installs several services
