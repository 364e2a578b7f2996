from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.batchdedupe"
    label = "bench_batchdedupe"
    event_tasks_service = "batchdedupe"
