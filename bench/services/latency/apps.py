from django.apps import AppConfig


class Config(AppConfig):
    name = "bench.services.latency"
    label = "bench_latency"
    event_tasks_service = "latency"
