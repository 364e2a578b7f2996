from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.plaintask"
    label = "bench_plaintask"
    event_tasks_service = "plaintask"
