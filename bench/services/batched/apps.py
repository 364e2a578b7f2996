from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.batched"
    label = "bench_batched"
    event_tasks_service = "batched"
