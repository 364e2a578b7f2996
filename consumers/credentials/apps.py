from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    """Credentials: the tables its event handlers keep in the credentials database."""

    name = "consumers.credentials"
    label = "credentials"
    verbose_name = "Credentials (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "credentials"  # whose handlers these are, in a process that installs several services
