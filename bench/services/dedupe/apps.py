from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.dedupe"
    label = "bench_dedupe"
    event_tasks_service = "dedupe"
