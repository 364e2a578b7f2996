from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.epsilon"
    label = "probe_epsilon"
    event_tasks_service = "epsilon"
