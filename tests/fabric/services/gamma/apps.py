from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.gamma"
    label = "probe_gamma"
    event_tasks_service = "gamma"
