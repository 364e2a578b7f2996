from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.ordered"
    label = "bench_ordered"
    event_tasks_service = "ordered"
