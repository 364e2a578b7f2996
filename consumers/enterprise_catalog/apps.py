from django.apps import AppConfig


class EnterpriseCatalogConfig(AppConfig):
    """Enterprise catalog: the tables its event handlers keep in the enterprise_catalog database."""

    name = "consumers.enterprise_catalog"
    label = "enterprise_catalog"
    verbose_name = "Enterprise catalog (event projection)"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "enterprise_catalog"  # whose handlers these are, in a process that installs several services
