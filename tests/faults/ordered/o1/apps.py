from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.faults.ordered.o1"
    label = "ordered_o1"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "o1"
