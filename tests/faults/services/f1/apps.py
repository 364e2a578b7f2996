from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.faults.services.f1"
    label = "fault_f1"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "f1"
