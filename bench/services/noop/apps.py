from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.noop"
    label = "bench_noop"
    event_tasks_service = "noop"
