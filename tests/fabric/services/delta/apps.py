from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.delta"
    label = "probe_delta"
    event_tasks_service = "delta"
