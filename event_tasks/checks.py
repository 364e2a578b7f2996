"""Django system checks of the fabric's settings (``python manage.py check``; also run by
``migrate`` and ``runserver``).

Importing this module registers every check (the Django app's ``ready()`` does). Each problem has
a stable id, a one-line message and a hint saying what to do (``docs/settings.md``):

==================  =========================================================================
``event_tasks.E001`` an ``EVENT_TASKS_*`` name that is no setting (a typo), with the closest one
``event_tasks.E002`` a setting of the wrong type (its field's annotation in ``conf.Settings``)
``event_tasks.E003`` a broker event-tasks does not run on (``CELERY_BROKER_URL``, an installed
                     Celery app's ``broker_url``)
``event_tasks.E004`` no catalog: ``EVENT_TASKS_SCHEMAS_PACKAGE`` is not set
``event_tasks.E005`` a catalog package that does not import
``event_tasks.E006`` a malformed ``EVENT_TASKS_SERVICE``
``event_tasks.W001`` a RabbitMQ failover list (a cluster) with classic queues, which live on one
                     node each: ``EVENT_TASKS_QUEUE_TYPE = "quorum"`` (docs/cluster.md)
``event_tasks.E007`` a signing setting that cannot be used (a key that does not load, a key id twice)
``event_tasks.W002`` production settings (``EVENT_TASKS_REQUIRE_DURABLE_BROKER``) and signatures not
                     enforced: anyone with broker credentials can send any event type (docs/signing.md)
``event_tasks.W003`` production settings and no ``EVENT_TASKS_METRICS_AUTH``: ``events metrics`` serves
                     anyone, or will not start with ``EVENT_TASKS_REQUIRE_ENDPOINT_AUTH`` (docs/security.md)
==================  =========================================================================

The checks read the Django settings as they are (never :func:`conf.settings`, which refuses a
wrong type), so that one run reports every problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings as django_settings
from django.core import checks

from . import catalog, signing
from .brokers.topology import broker_kind
from .conf import FIELD_OF, PREFIX, SERVICE_NAME, SETTING_NAMES, coerce, settings
from .errors import ConfigurationError, InvalidSetting
from .send import publisher

if TYPE_CHECKING:
    from django.apps import AppConfig

TAG = "event_tasks"
DOC = "every setting: docs/settings.md"


def _present() -> dict[str, object]:
    """The ``EVENT_TASKS_*`` Django settings that are set, by name."""
    return {name: getattr(django_settings, name) for name in dir(django_settings) if name.startswith(PREFIX)}


@checks.register(TAG)
def check_setting_names(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """E001: a name under ``EVENT_TASKS_`` that no setting has (silently ignored otherwise)."""
    found: list[checks.CheckMessage] = []
    for name in sorted(set(_present()) - set(FIELD_OF)):
        # Compared without the prefix, which every name shares.
        close = difflib.get_close_matches(name[len(PREFIX) :], [n[len(PREFIX) :] for n in FIELD_OF], n=1)
        if close:
            msg = f"{name} is not an event-tasks setting: did you mean {PREFIX}{close[0]}?"
            hint = f"Rename it to {PREFIX}{close[0]}: a misspelt setting is ignored ({DOC})."
        else:
            msg = f"{name} is not an event-tasks setting"
            hint = f"Remove it, or use one of the settings event-tasks reads ({DOC})."
        found.append(checks.Error(msg, hint=hint, id="event_tasks.E001"))
    return found


@checks.register(TAG)
def check_setting_types(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """E002: a value of the wrong type for its field (``conf.coerce``, as the processes read it)."""
    found: list[checks.CheckMessage] = []
    for name, value in sorted(_present().items()):
        if name not in FIELD_OF:
            continue
        try:
            coerce(FIELD_OF[name], value)
        except InvalidSetting as exc:
            found.append(
                checks.Error(
                    f"{name} must be {exc.expected}, not {type(value).__name__} ({value!r})",
                    hint=f"Give {name} a value of type {exc.expected} (default: {exc.default!r}), or remove it ({DOC}).",
                    id="event_tasks.E002",
                )
            )
    return found


def _broker_urls() -> dict[str, str]:
    """``{url: where it is set}``: ``CELERY_BROKER_URL`` and the broker of every app handed to install()."""
    urls: dict[str, str] = {}
    for app in publisher.known_apps():  # the Celery apps handed to install()
        url = app.conf.broker_url
        if isinstance(url, str) and url:
            urls.setdefault(url, f"the Celery app {app.main!r}'s broker_url")
    setting = getattr(django_settings, "CELERY_BROKER_URL", None)
    if isinstance(setting, str) and setting:
        urls[setting] = "CELERY_BROKER_URL"
    return urls


@checks.register(TAG)
def check_broker(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """E003: a broker scheme that :func:`~event_tasks.brokers.topology.broker_kind` refuses;
    W001: a RabbitMQ cluster (a failover list) with classic queues."""
    found: list[checks.CheckMessage] = []
    queue_type = getattr(django_settings, f"{PREFIX}QUEUE_TYPE", "classic")
    for url, where in _broker_urls().items():
        try:
            if broker_kind(url) == "amqp" and len(url.split(";")) > 1 and queue_type != "quorum":
                found.append(
                    checks.Warning(
                        f"{where} lists {len(url.split(';'))} RabbitMQ nodes, and the fabric's queues are classic: "
                        "a classic queue lives on one node, and while that node is down the events sent to it are "
                        "confirmed and dropped",
                        hint='Set EVENT_TASKS_QUEUE_TYPE = "quorum" (and move existing queues with '
                        "`manage.py events queues migrate`): docs/cluster.md.",
                        id="event_tasks.W001",
                    )
                )
        except ConfigurationError as exc:
            found.append(
                checks.Error(
                    str(exc) if where == "CELERY_BROKER_URL" else f"{exc} (set as {where})",
                    hint=f"Point {where} at a Redis (redis://host:6379/0) or RabbitMQ (amqp://user:password@host:5672//) broker.",
                    id="event_tasks.E003",
                )
            )
    return found


@checks.register(TAG)
def check_catalog(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """E004: no ``EVENT_TASKS_SCHEMAS_PACKAGE``; E005: a catalog package that does not import."""
    name = SETTING_NAMES["schemas_package"]
    value = getattr(django_settings, name, None)
    try:
        packages = coerce("schemas_package", value)
    except InvalidSetting:
        return []  # E002 says so
    if not packages:
        return [
            checks.Error(
                f"{name} is not set: this service has no catalog of event types, so it can neither send nor consume",
                hint=f"Set {name} to the package that holds your event types (e.g. 'myplatform.events'; "
                "the openedx-events types: 'event_tasks.openedx.catalog').",
                id="event_tasks.E004",
            )
        ]
    found: list[checks.CheckMessage] = []
    names = [packages] if isinstance(packages, str) else list(packages) if isinstance(packages, tuple) else []
    for package in names:
        try:
            catalog.load(package)
        except Exception as exc:  # noqa: BLE001 - whatever the catalog's import raises is the finding; a check never crashes the run
            cause = exc.__cause__ if isinstance(exc, ConfigurationError) and exc.__cause__ else exc
            found.append(
                checks.Error(
                    f"{name}: the catalog package {package!r} does not import ({type(cause).__name__}: {cause})",
                    hint=f"Install the package, fix its modules, or point {name} at the package that holds your event types.",
                    id="event_tasks.E005",
                )
            )
    return found


@checks.register(TAG)
def check_service(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """E006: an ``EVENT_TASKS_SERVICE`` that is no service name (unset is fine: a tooling process)."""
    name = SETTING_NAMES["service"]
    value = getattr(django_settings, name, None)
    if not isinstance(value, str) or not value or SERVICE_NAME.match(value):
        return []  # unset, or E002 says what is wrong
    return [
        checks.Error(
            f"{name} = {value!r} is not a service name",
            hint="Use lower-case letters, digits and underscores, starting with a letter, at most 63 (e.g. 'lms'): "
            "it names the service's queue, events.<service>.",
            id="event_tasks.E006",
        )
    ]


@checks.register(TAG)
def check_signing(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """E007: an unusable signing key or key table; W002: signatures not enforced in production (the
    settings that make a worker refuse a Redis that can lose events: ``EVENT_TASKS_REQUIRE_DURABLE_BROKER``)."""
    try:
        conf = settings()
        signing.signer_for(conf)
        mode = signing.verifier_for(conf).mode
    except InvalidSetting:
        return []  # E002 says so
    except ConfigurationError as exc:
        return [
            checks.Error(
                str(exc), hint="docs/signing.md: generate keys with `events keys generate`.", id="event_tasks.E007"
            )
        ]
    if mode == "enforce" or not conf.require_durable_broker:
        return []
    return [
        checks.Warning(
            f"production settings, and signed envelopes are not enforced (EVENT_TASKS_SIGNING_MODE is {mode!r}): a worker runs an event "
            "whoever sent it, so anyone with the broker's credentials can send any event type",
            hint="Sign every producer, verify in warn mode, then set EVENT_TASKS_SIGNING_MODE = 'enforce' (docs/signing.md).",
            id="event_tasks.W002",
        )
    ]


@checks.register(TAG)
def check_endpoint_auth(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **_: object
) -> list[checks.CheckMessage]:
    """W003: production settings (``EVENT_TASKS_REQUIRE_DURABLE_BROKER`` or ``_REQUIRE_ENDPOINT_AUTH``)
    and no credentials for the metrics endpoint."""
    try:
        conf = settings()
    except ConfigurationError:
        return []  # E001 / E002 say so
    if conf.metrics_auth or not (conf.require_durable_broker or conf.require_endpoint_auth):
        return []
    what = "will not start" if conf.require_endpoint_auth else "serves the platform's figures to anyone"
    return [
        checks.Warning(
            f"production settings, and EVENT_TASKS_METRICS_AUTH is not set: `events metrics` {what}",
            hint="Set EVENT_TASKS_METRICS_AUTH = 'user:password' from a secret (environment or file), never the "
            "repository (docs/security.md).",
            id="event_tasks.W003",
        )
    ]
