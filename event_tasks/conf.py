"""The fabric's settings: Django settings named ``EVENT_TASKS_*``, with defaults.

Every setting is a field of :class:`Settings`, documented there once: its ``metadata`` says what it
does (``doc``) and which processes read it (``read_by``). ``docs/settings.md`` is generated from
those fields (``make settings-doc``: ``settings_doc.write_reference``), and a unit test keeps the two equal.

A host project sets them in its own settings module (this repository: ``config/settings/``, which takes environment
overrides); nothing in ``event_tasks`` reads ``os.environ``. Only ``EVENT_TASKS_*`` names are read: the host's
``CELERY_*`` settings stay the host's. :func:`settings` refuses a value of the wrong type (``InvalidSetting``);
``manage.py check`` also reports unknown names, brokers and catalogs (``event_tasks.checks``).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from functools import cache
from typing import Any, TypeVar

from .errors import InvalidSetting, NoCatalog, UnknownService
from .setting_types import describe_type, matches

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PREFIX = "EVENT_TASKS_"

# Who reads a setting (``read_by``): these words, joined by ", ".
ALL, SENDER, WORKER, RELAY, OPERATOR = "all", "sender", "worker", "relay", "operator commands"

T = TypeVar("T")


def _setting(default: T, *, read_by: str, doc: str) -> T:
    """A field of :class:`Settings`: ``dataclasses.field(default=..., metadata={"doc": ..., "read_by": ...})``."""
    return dataclasses.field(default=default, metadata={"doc": doc, "read_by": read_by})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every ``EVENT_TASKS_<FIELD>`` setting, with its default and documentation (``docs/settings.md``)."""

    service: str | None = _setting(
        None,
        read_by=ALL,
        doc="This process's service: lower-case letters, digits and underscores, starting with a letter "
        "(e.g. `lms`). It is the `source` of the events it sends and names its queue (`events.lms`). Every "
        "process that sends or consumes needs it; an operator's tooling process may leave it unset.",
    )
    celery_app: str | None = _setting(
        None,
        read_by=f"{SENDER}, {OPERATOR}",
        doc="The service's Celery app as `module:attr` (e.g. `proj.celery:app`); only needed when nothing in the "
        "process called `event_tasks.app.install(app)` (it is also the pytest plugin's default app).",
    )
    schemas_package: str | tuple[str, ...] | None = _setting(
        None,
        read_by=ALL,
        doc="The catalog: the installed package (or a list of packages) whose modules declare the event types, "
        "shared by every service of the platform (e.g. `myplatform.events`; the openedx-events types: "
        "`event_tasks.openedx.catalog`). There is no default: a process that sends or consumes without it "
        "stops with `NoCatalog`.",
    )
    handlers_module: str = _setting(
        "handlers",
        read_by=f"{WORKER}, {OPERATOR}",
        doc="The module looked up in every installed Django app for `@consumer` handlers (`<app>.handlers`), "
        "as Celery's `autodiscover_tasks` looks for `tasks`.",
    )
    exchange: str = _setting(
        "events",
        read_by=ALL,
        doc="The topic exchange the subscriptions are bound on: senders publish to it, workers bind their queue "
        "on it. Every service of a platform uses the same one.",
    )
    queue_prefix: str = _setting(
        "events.",
        read_by=ALL,
        doc="A service's event queue is this prefix and the service's name (`events.lms`); a worker consumes "
        "events only when its `-Q` names that queue. The same for every service of a platform.",
    )
    max_retries: int = _setting(
        5,
        read_by=WORKER,
        doc="Retries of a failing delivery, in its service only, before it becomes a `max_retries` dead letter; "
        "a handler's `@consumer(max_retries=...)` overrides it.",
    )
    retry_backoff: float = _setting(
        2.0,
        read_by=WORKER,
        doc="Seconds: retry n of a delivery waits between half and all of `backoff * 2**n` (exponential, with "
        "jitter), at most `EVENT_TASKS_RETRY_BACKOFF_MAX`.",
    )
    retry_backoff_max: float = _setting(
        300.0,
        read_by=WORKER,
        doc="Seconds: the longest wait before a retry; on Redis also kept below half the visibility timeout.",
    )
    publish_retries: int = _setting(
        3,
        read_by=f"{SENDER}, {RELAY}",
        doc="Tries to reach an unreachable broker before a send raises `PublishError` (the relay keeps the "
        "outbox row and tries again later).",
    )
    publish_timeout: float = _setting(
        2.0,
        read_by=f"{SENDER}, {RELAY}",
        doc="Seconds per connect or command of a send (RabbitMQ: a publisher confirm is awaited this long "
        "times the tries); a send never blocks for ever.",
    )
    max_payload_bytes: int = _setting(
        256 * 1024,
        read_by=f"{SENDER}, {WORKER}",
        doc="The largest encoded event (bytes, 256 KiB): a larger send raises `PayloadTooLarge`, a larger message "
        "received is a `too_large` dead letter. Send a reference instead of the content.",
    )
    compiled_codecs: bool = _setting(
        True,
        read_by=f"{SENDER}, {WORKER}",
        doc="Payloads are validated by codecs compiled from the schemas (`event_tasks.codec`), marshmallow "
        "deciding whatever a codec is unsure of; `False`: marshmallow validates everything.",
    )
    max_redeliveries: int = _setting(
        3,
        read_by=WORKER,
        doc="A delivery whose worker died (or ran past its hard time limit) this often is dead-lettered "
        "(`worker_lost`, `time_limit`): a poison message does not kill workers for ever.",
    )
    unknown_type_wait: float = _setting(
        900.0,
        read_by=WORKER,
        doc="Seconds an event of a type no handler of this worker knows waits in the queue for a worker that "
        "knows it (a deploy in progress), counted from the event's `time`; then it is an `unknown_type` dead letter.",
    )
    handler_time_limit: float = _setting(
        1500.0,
        read_by=WORKER,
        doc="Seconds: a delivery's hard time limit (a handler's `@consumer(time_limit=...)` overrides it). Keep it "
        "below `EVENT_TASKS_RABBITMQ_CONSUMER_TIMEOUT` (a worker on RabbitMQ refuses to start otherwise) and "
        "the Redis visibility timeout.",
    )
    rabbitmq_consumer_timeout: float = _setting(
        1800.0,
        read_by=WORKER,
        doc="Seconds: the broker's `consumer_timeout` (RabbitMQ's default is 30 min), which the handler time "
        "limits must stay below; set it to what the broker is configured with.",
    )
    visibility_timeout: float | None = _setting(
        None,
        read_by=WORKER,
        doc="Redis: seconds before the event a dead worker held comes back to the queue. `None`: the host's "
        "`CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']`, else 3600. Retry waits stay below half of it.",
    )
    restore_interval: int = _setting(
        10,
        read_by=WORKER,
        doc="Redis: seconds between a worker's sweeps that put back the deliveries of dead workers (unacked past "
        "the visibility timeout).",
    )
    require_durable_broker: bool = _setting(
        False,
        read_by=WORKER,
        doc="Redis: a worker refuses to start on a Redis that can lose queued events (AOF off, an eviction "
        "policy), instead of warning. For production (this repository's production settings turn it on).",
    )
    outbox: bool = _setting(
        True,
        read_by=SENDER,
        doc="`send_event` inside `transaction.atomic()` goes through the outbox: the event is a row of that "
        "transaction, published on commit (or later by the relay). `False` turns the outbox off: such a send "
        "publishes at once, even if the transaction then rolls back.",
    )
    outbox_grace: float = _setting(
        2.0,
        read_by=f"{SENDER}, {RELAY}",
        doc="Seconds the relay leaves an outbox row this young to the sender's own on-commit publish.",
    )
    outbox_retention: float = _setting(
        7 * 24 * 3600.0,
        read_by=f"{RELAY}, {WORKER}, {OPERATOR}",
        doc="Seconds a sent outbox row is kept (7 days) before pruning (the relay, the prune task, `events prune`).",
    )
    outbox_lease: float = _setting(
        60.0,
        read_by=RELAY,
        doc="Seconds a relay's claim on outbox rows lasts; then another relay may take them (one publishes each).",
    )
    outbox_backoff: float = _setting(
        5.0,
        read_by=RELAY,
        doc="Seconds: an outbox row that fails on its own (the broker refused it; not an outage) waits "
        "`backoff * 2**(n - 1)` after its n-th failure ...",
    )
    outbox_backoff_max: float = _setting(
        900.0,
        read_by=RELAY,
        doc="... at most this many seconds, and is retried for ever (each failure logged as a warning).",
    )
    database: str | None = _setting(
        None,
        read_by=f"{SENDER}, {RELAY}, {WORKER}, {OPERATOR}",
        doc="The Django database alias of the fabric's rows (outbox, and pruning); `None`: the database router's choice.",
    )
    keep_processed_days: float = _setting(
        30.0,
        read_by=f"{WORKER}, {OPERATOR}",
        doc="Days duplicate marks and redelivery counts are kept. Pruning refuses a value below the redelivery "
        "window (from the redeliveries, retries, time limits and outbox settings): `RetentionTooShort`.",
    )
    keep_results_days: float = _setting(
        14.0,
        read_by=f"{WORKER}, {OPERATOR}",
        doc="Days the django-celery-results rows of event tasks are kept (they hold payloads); the host's own "
        "results are left alone.",
    )
    keep_deadletters_days: float = _setting(
        30.0,
        read_by=f"{WORKER}, {OPERATOR}",
        doc="Days a replayed dead letter is kept after its replay (a dead letter never replayed stays).",
    )
    prune_batch: int = _setting(1000, read_by=f"{WORKER}, {RELAY}, {OPERATOR}", doc="Rows per `DELETE` when pruning.")
    archive_days: float | None = _setting(
        None,
        read_by=f"{SENDER}, {RELAY}, {WORKER}, {OPERATOR}",
        doc="Days every sent event is kept in the archive (`events.archive`: a Redis stream, a RabbitMQ stream "
        "queue), which `events backfill` replays to a new subscriber (docs/archive.md). `None`: no archive.",
    )
    openedx_signals: tuple[str, ...] = _setting(
        (),
        read_by=WORKER,
        doc="`event_tasks.openedx`: the openedx-events types (or topic patterns) this service consumes and "
        "re-emits as signals; a single name will do.",
    )
    queue_type: typing.Literal["classic", "quorum"] = _setting(
        "classic",
        read_by=ALL,
        doc="RabbitMQ: the type of the queues the fabric declares (`events.<service>`, `.parked`, the retry delay "
        "levels): `classic` (one node) or `quorum` (replicated on a cluster; docs/cluster.md).",
    )
    quorum_delivery_limit: int = _setting(
        100,
        read_by=ALL,
        doc="Quorum queues: deliveries of one message (requeues too) before RabbitMQ parks it in "
        "`events.<service>.parked`, a `delivery_limit` dead letter. Keep it above `EVENT_TASKS_MAX_REDELIVERIES`.",
    )
    redis_wait_replicas: int = _setting(
        0,
        read_by=f"{SENDER}, {RELAY}",
        doc="Redis with replicas: a send returns once this many replicas have its copies (`WAIT`), else "
        "`PublishError` (send again, same id). `0`: no wait; a failover can lose acknowledged sends.",
    )
    redis_wait_timeout: float = _setting(
        1.0, read_by=f"{SENDER}, {RELAY}", doc="Seconds a send waits for `EVENT_TASKS_REDIS_WAIT_REPLICAS` replicas."
    )
    rabbitmq_management_url: str | None = _setting(
        None,
        read_by=OPERATOR,
        doc="RabbitMQ's management API (`http://user:password@host:15672`, Flower's `--broker_api`), for "
        "`events status`, `events topology verify`; `None`: the broker's host on port 15672 with its credentials.",
    )
    service_databases: dict[str, str] | None = _setting(  # noqa: RUF009 - _setting is dataclasses.field (default None)
        None,
        read_by=OPERATOR,
        doc="Operator commands across services (`status`, `trace`): service to the Django database alias that "
        "holds its tables (a read replica will do); default: an alias named like the service, and this "
        "process's own service in `default`.",
    )
    inspect_timeout: float = _setting(1.0, read_by=OPERATOR, doc="Seconds `events status` waits for workers' replies.")
    metrics_auth: str | None = _setting(
        None, read_by=OPERATOR, doc="`user:password`: `events metrics` wants these basic-auth credentials (or 401)."
    )
    require_endpoint_auth: bool = _setting(
        False, read_by=OPERATOR, doc="`events metrics` refuses to start without `EVENT_TASKS_METRICS_AUTH`."
    )

    signing_key: str | None = _setting(
        None,
        read_by=f"{SENDER}, {RELAY}",
        doc="This service's Ed25519 private key (PEM, or base64 of its 32 raw bytes: `events keys generate`); every "
        "event it sends is signed with it (docs/signing.md). `None`: unsigned, unless `EVENT_TASKS_SIGNING_KEY_FILE`.",
    )
    signing_key_file: str | None = _setting(None, read_by=f"{SENDER}, {RELAY}", doc="A file holding that private key.")
    signing_key_id: str | None = _setting(
        None,
        read_by=f"{SENDER}, {RELAY}",
        doc="The private key's id (e.g. `lms-2026-12`), sent with each signature: unique across the platform.",
    )
    signing_public_keys: dict[str, dict[str, str]] | None = _setting(  # noqa: RUF009 - _setting is dataclasses.field
        None,
        read_by=WORKER,
        doc="Every producing service's public keys, `{service: {key id: public key (PEM or base64)}}`, at most two "
        "per service (the current key and the one rotated in or out).",
    )
    signing_owners: dict[str, tuple[str, ...]] | None = _setting(  # noqa: RUF009 - _setting is dataclasses.field
        None,
        read_by=WORKER,
        doc="A catalog owner that is no service, to the services that may sign its types (openedx-events names "
        "repositories: `{'openedx/edx-platform': ['lms', 'cms']}`); any other owner signs its own types.",
    )
    signing_mode: typing.Literal["off", "warn", "enforce"] | None = _setting(
        None,
        read_by=WORKER,
        doc="An unsigned, badly signed or not-owner event: `off` (not checked), `warn` (logged, counted, run) or "
        "`enforce` (a dead letter `unsigned`, `bad_signature`, `not_owner`). `None`: `warn` with public keys, else `off`.",
    )
    broker_users: dict[str, str] | None = _setting(  # noqa: RUF009 - _setting is dataclasses.field (default None)
        None,
        read_by=f"{WORKER}, {OPERATOR}",
        doc="RabbitMQ: service to its broker user (docs/broker-users.md). Set, a worker dead-letters (`not_owner`) an "
        "event whose `user_id` is not the user of its type's owner (or its own: retries); `events broker-users`.",
    )

    def queue_name(self, service: str) -> str:
        return f"{self.queue_prefix}{service}"

    def parked_queue_name(self, service: str) -> str:  # a quorum queue's messages past the delivery limit
        return f"{self.queue_prefix}{service}.parked"

    @property
    def schemas_packages(self) -> tuple[str, ...]:
        """The catalog's packages; :class:`NoCatalog` if ``EVENT_TASKS_SCHEMAS_PACKAGE`` is unset."""
        value = self.schemas_package
        packages = (value,) if isinstance(value, str) else tuple(value or ())
        if not packages:
            raise NoCatalog()
        return packages

    def require_service(self) -> str:
        """This process's service; :class:`UnknownService` (a start-up error) if unset or malformed."""
        return check_service_name(self.service)


def check_service_name(service: str | None) -> str:
    if not service or not SERVICE_NAME.match(service):
        raise UnknownService(service)
    return service


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
SETTING_NAMES = {name: f"{PREFIX}{name.upper()}" for name in FIELDS}  # field -> Django setting
FIELD_OF = {setting: name for name, setting in SETTING_NAMES.items()}  # Django setting -> field
_TYPES = typing.get_type_hints(Settings)


def coerce(field: str, value: object) -> object:
    """``value`` as :class:`Settings` holds field ``field`` (a list as a tuple; one str where only a
    list of str is taken as a list of one); :class:`InvalidSetting` if it is of the wrong type."""
    annotation = _TYPES[field]
    held = tuple(value) if isinstance(value, list) else value
    if isinstance(held, str) and not matches(held, annotation) and matches((held,), annotation):
        held = (held,)
    if not matches(held, annotation):
        raise InvalidSetting(SETTING_NAMES[field], value, describe_type(annotation), FIELDS[field].default)
    return held


@cache
def settings() -> Settings:
    """The effective settings (cached; tests call ``settings.cache_clear()`` after overrides)."""
    from django.conf import settings as django_settings

    values: dict[str, Any] = {}  # Any: each value was checked against its field's annotation (coerce)
    if django_settings.configured:
        for field, name in SETTING_NAMES.items():
            if hasattr(django_settings, name):
                values[field] = coerce(field, getattr(django_settings, name))
    return Settings(**values)
