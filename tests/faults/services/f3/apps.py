from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.faults.services.f3"
    label = "fault_f3"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "f3"
