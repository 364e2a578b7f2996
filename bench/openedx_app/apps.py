from django.apps import AppConfig


def receiver(sender=None, **kwargs):
    from bench.services import count

    count()


class Config(AppConfig):
    name = "bench.openedx_app"
    label = "bench_openedx_app"

    def ready(self) -> None:
        from openedx_events.learning.signals import CERTIFICATE_CREATED

        CERTIFICATE_CREATED.connect(receiver, dispatch_uid="bench-openedx-noop")
