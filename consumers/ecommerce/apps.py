from django.apps import AppConfig


class EcommerceConfig(AppConfig):
    """Ecommerce: the tables its event handlers keep in the ecommerce database."""

    name = "consumers.ecommerce"
    label = "ecommerce"
    verbose_name = "Ecommerce (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "ecommerce"  # whose handlers these are, in a process that installs several services
