from django.apps import AppConfig


class StudioConfig(AppConfig):
    """Studio: the tables its event handlers keep in the studio database."""

    name = "consumers.studio"
    label = "studio"
    verbose_name = "Studio (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
