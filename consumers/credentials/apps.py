from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    """Credentials: the tables its event handlers keep in the credentials database."""

    name = "consumers.credentials"
    label = "credentials"
    verbose_name = "Credentials (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
