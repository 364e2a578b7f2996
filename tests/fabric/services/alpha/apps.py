from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.alpha"
    label = "probe_alpha"
    event_tasks_service = "alpha"
