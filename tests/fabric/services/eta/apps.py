from django.apps import AppConfig


class Config(AppConfig):
    name = "tests.fabric.services.eta"
    label = "probe_eta"
    event_tasks_service = "eta"
