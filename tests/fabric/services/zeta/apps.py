from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.zeta"
    label = "probe_zeta"
    event_tasks_service = "zeta"
