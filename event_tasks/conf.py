"""The fabric's settings, read from Django settings (``EVENT_TASKS_*``) with defaults.

A host project sets them in its own settings module (this repository: ``config/settings/``,
which takes environment overrides); nothing in ``event_tasks`` reads ``os.environ``.
Only ``EVENT_TASKS_*`` names are read: the host's ``CELERY_*`` settings stay the host's.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache

from .errors import ConfigurationError, UnknownService

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclasses.dataclass(frozen=True)
class Settings:
    service: str | None = None
    celery_app: str | None = None  # "module:attr"; only needed when nothing called install(app)
    schemas_package: str | tuple[str, ...] = "schemas"  # the catalog: one or several installed packages
    handlers_module: str = "handlers"  # looked up in every installed Django app
    exchange: str = "events"
    queue_prefix: str = "events."
    max_retries: int = 5
    retry_backoff: float = 2.0  # seconds; attempt n waits about backoff * 2**n (full jitter)
    retry_backoff_max: float = 300.0  # seconds; also capped below the Redis visibility timeout
    publish_retries: int = 3  # broker unreachable: tries before PublishError
    publish_timeout: float = 2.0  # seconds per connect / command
    max_payload_bytes: int = 256 * 1024
    compiled_codecs: bool = (
        True  # payloads validated by compiled codecs (event_tasks.codec), marshmallow deciding the rest
    )
    max_redeliveries: int = 3  # a delivery whose worker died this often is dead-lettered
    unknown_type_wait: float = 900.0  # seconds an event of a type no worker knows waits in the queue (deploys)
    handler_time_limit: float = 1500.0  # seconds; below RabbitMQ's consumer_timeout (30 min) and the visibility timeout
    rabbitmq_consumer_timeout: float = 1800.0  # the broker's consumer_timeout (RabbitMQ default 30 min)
    visibility_timeout: float | None = None  # Redis: seconds before a dead worker's event comes back (None: the
    # host's broker_transport_options, else 3600)
    restore_interval: int = 10  # Redis: seconds between sweeps that restore unacked messages
    require_durable_broker: bool = False  # production: refuse to start on a Redis that can lose data
    outbox: bool = True  # send_event inside transaction.atomic() goes through the outbox
    outbox_grace: float = 2.0  # the relay leaves rows this young to the on-commit publish
    outbox_retention: float = 7 * 24 * 3600.0  # seconds a sent outbox row is kept
    outbox_lease: float = 60.0  # seconds a relay's claim on outbox rows lasts (then another may take them)
    outbox_backoff: float = 5.0  # seconds; a row that fails on its own waits about backoff * 2**attempts ...
    outbox_backoff_max: float = 900.0  # ... at most this long, and is retried for ever (and reported)
    database: str | None = None  # alias of the fabric's rows (outbox ...); None: the router's choice
    keep_processed_days: float = 30.0  # duplicate marks and redelivery counts (refused if below the redelivery window)
    keep_results_days: float = 14.0  # django-celery-results rows of event tasks (they hold payloads)
    keep_deadletters_days: float = 30.0  # a replayed dead letter is kept this long after its replay
    prune_batch: int = 1000  # rows per DELETE when pruning
    openedx_signals: tuple[
        str, ...
    ] = ()  # event_tasks.openedx: the openedx-events types (or patterns) this service consumes
    # Operations (``events status|trace|topology verify``):
    rabbitmq_management_url: str | None = None  # RabbitMQ management API (Flower's --broker_api); None: the
    # broker's host on port 15672 with the broker's credentials
    service_databases: dict[str, str] | None = None  # service -> Django database alias holding its tables (default:
    # an alias named like the service; this process's own: "default")
    inspect_timeout: float = 1.0  # seconds to wait for workers' replies (status)

    def queue_name(self, service: str) -> str:
        return f"{self.queue_prefix}{service}"

    @property
    def schemas_packages(self) -> tuple[str, ...]:
        value = self.schemas_package
        return (value,) if isinstance(value, str) else tuple(value)

    def require_service(self) -> str:
        """This process's service; :class:`UnknownService` (a start-up error) if unset or malformed."""
        return check_service_name(self.service)


def check_service_name(service: str | None) -> str:
    if not service or not SERVICE_NAME.match(service):
        raise UnknownService(service)
    return service


_FIELDS = {f.name: f"EVENT_TASKS_{f.name.upper()}" for f in dataclasses.fields(Settings)}


@cache
def settings() -> Settings:
    """The effective settings (cached; tests call ``settings.cache_clear()`` after overrides)."""
    from django.conf import settings as django_settings

    values = {}
    if django_settings.configured:
        for field, name in _FIELDS.items():
            if hasattr(django_settings, name):
                values[field] = getattr(django_settings, name)
    if isinstance(values.get("schemas_package"), list):
        values["schemas_package"] = tuple(values["schemas_package"])
    if isinstance(values.get("openedx_signals"), (list, str)):
        signals = values["openedx_signals"]
        values["openedx_signals"] = (signals,) if isinstance(signals, str) else tuple(signals)
    try:
        return Settings(**values)
    except TypeError as exc:  # pragma: no cover - a typo in a setting name is caught by hasattr above
        raise ConfigurationError(str(exc)) from None
