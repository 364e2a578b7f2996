from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.faults.services.f2"
    label = "fault_f2"
    default_auto_field = "django.db.models.BigAutoField"
    event_tasks_service = "f2"
