from django.apps import AppConfig


class EventTasksConfig(AppConfig):
    name = "event_tasks"
    verbose_name = "Event fabric"
    default_auto_field = "django.db.models.BigAutoField"
