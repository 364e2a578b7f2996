from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.beta"
    label = "probe_beta"
    event_tasks_service = "beta"
