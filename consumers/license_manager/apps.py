from django.apps import AppConfig


class LicenseManagerConfig(AppConfig):
    """License manager: the tables its event handlers keep in the license_manager database."""

    name = "consumers.license_manager"
    label = "license_manager"
    verbose_name = "License manager (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "license_manager"  # whose handlers these are, in a process that installs several services
