from django.apps import AppConfig


class DigestsConfig(AppConfig):
    name = "notifier.digests"
    label = "digests"
    verbose_name = "Digests"
