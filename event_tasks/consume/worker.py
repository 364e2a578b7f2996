"""Wiring a worker that consumes its service's event queue (called by ``app`` at worker start).

The first step of the consume path: :func:`prepare_worker` registers the service's event tasks
(``dispatch``, and ``batching`` for batched types), puts the event queue with its bindings on the
app, fixes the intake's :class:`~event_tasks.consume.intake.IntakePlan` and adds the intake step
(``intake.EventIntake``) to the worker's consumer. Everything here acts on the event side only:
the event tasks, the event queue, the intake step's plan, the Redis transport of the event
channel; see ``app`` for what is left to the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypedDict

from .. import signing
from ..brokers.check import check_redis
from ..brokers.rabbitmq.fanout import KombuFanout
from ..brokers.redis import sentinel as redis_sentinel
from ..brokers.redis import transport as redis_transport
from ..brokers.redis.clients import is_sentinel
from ..brokers.topology import (
    broker_kind,
    is_quorum,
    put_queue,
    queue_type_for,
    retry_exchange_name,
    service_queue,
)
from ..conf import Settings, settings
from ..errors import ConfigurationError
from ..handlers import service_handlers
from ..send import publisher
from .batching import BatchEventTask, batch_task_name
from .dispatch import register_tasks
from .intake import EventIntake, IntakePlan, RedisIntake, plan_of, set_plan
from .senders import SenderCheck

if TYPE_CHECKING:
    from celery import Celery
    from celery.backends.base import Backend
    from kombu import Producer

log = logging.getLogger(__name__)

VISIBILITY_MARGIN = 0.5  # retry countdowns stay below half the Redis visibility timeout
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
REDIS_TRANSPORT = "event_tasks.brokers.redis.transport:Transport"
SENTINEL_TRANSPORT = redis_sentinel.PATH  # "event_tasks.brokers.redis.sentinel:SentinelTransport"


class _TaskOptions(TypedDict):
    """What ``register_tasks`` gets for both the event tasks and the batch tasks of a worker."""

    queue_name: str
    max_retries: int
    backoff_base: float
    backoff_cap: float
    max_redeliveries: int
    time_limit: float | None
    retry_producer: Callable[[], AbstractContextManager[Producer]] | None
    broker_delays: bool
    retry_exchange: str
    backend: Backend | None


def prepare_worker(app: Celery, conf: Settings | None = None) -> IntakePlan:
    """Wire a worker that consumes its service's event queue (see the module docstring)."""
    conf = conf or settings()
    service = conf.require_service()
    verifier = signing.verifier(conf)  # an unusable key stops the worker here (SigningKeyInvalid), not per event
    log.info("%s: signature checks %s (docs/signing.md)", service, verifier.mode)
    handlers = service_handlers(service)
    if not handlers.handlers:
        raise ConfigurationError(
            f"This worker consumes {conf.queue_name(service)}, but service {service!r} has no handlers: put "
            f"@consumer functions in a '{conf.handlers_module}' module of an installed app (or import them there), "
            f"or drop {conf.queue_name(service)} from -Q"
        )
    kind = broker_kind(app.conf.broker_url or "")
    queue = service_queue(
        service,
        handlers.patterns,
        queue_type_for(app.conf.broker_url or ""),
        retry_exchange=kind == "amqp",
        single_active=bool(handlers.ordered),
    )
    put_queue(app, queue)
    options = dict(app.conf.broker_transport_options or {})
    cap = conf.retry_backoff_max
    redis: RedisIntake | None = None
    retry_producer = None
    if kind == "amqp":
        if conf.handler_time_limit >= conf.rabbitmq_consumer_timeout:
            raise ConfigurationError(
                f"EVENT_TASKS_HANDLER_TIME_LIMIT ({conf.handler_time_limit:g} s) must be below RabbitMQ's "
                f"consumer_timeout ({conf.rabbitmq_consumer_timeout:g} s, EVENT_TASKS_RABBITMQ_CONSUMER_TIMEOUT): "
                "past it the broker closes the channel and hands the event to another consumer while the handler "
                "still runs"
            )
        longest = max((h.time_limit or 0 for h in handlers.handlers), default=0)
        if longest >= conf.rabbitmq_consumer_timeout:
            raise ConfigurationError(
                f"A handler of {service!r} has time_limit={longest:g} s, past RabbitMQ's "
                f"consumer_timeout ({conf.rabbitmq_consumer_timeout:g} s): lower it"
            )
        retry_producer = _confirming_producer
    if kind == "redis":
        visibility = float(conf.visibility_timeout or options.get("visibility_timeout") or DEFAULT_VISIBILITY_TIMEOUT)
        cap = min(cap, visibility * VISIBILITY_MARGIN)
        sentinel = is_sentinel(app.conf.broker_url or "")
        ours = SENTINEL_TRANSPORT if sentinel else REDIS_TRANSPORT
        if app.conf.broker_transport in (None, "", *(("sentinel",) if sentinel else ("redis", "rediss"))):
            # Consume the event queue with an atomic move (docs/decisions/0004); the host's own
            # channels keep kombu's behaviour in this transport (kombu's Sentinel channels on Sentinel).
            app.conf.broker_transport = ours
        if app.conf.broker_transport == ours:
            if sentinel:  # kombu's switch to the next sentinel URL keeps this transport
                redis_sentinel.use_for_sentinel_urls()
            redis_transport.Transport.events_restore_interval = float(conf.restore_interval)
            redis = RedisIntake(
                visibility_timeout=visibility,
                mutex_expire=max(10, 3 * conf.restore_interval),
                restore_interval=float(conf.restore_interval),
            )
        else:
            log.warning(
                "broker_transport is %r (set by the host): %s is consumed with that transport's own "
                "consume step, which can lose a message when a worker is killed mid-consume",
                app.conf.broker_transport,
                queue.name,
            )
        check_redis(app.conf.broker_url, require=conf.require_durable_broker, transport_options=options)
    task_options: _TaskOptions = dict(
        queue_name=queue.name,
        max_retries=conf.max_retries,
        backoff_base=conf.retry_backoff,
        backoff_cap=cap,
        max_redeliveries=conf.max_redeliveries,
        time_limit=conf.handler_time_limit,
        retry_producer=retry_producer,
        broker_delays=kind == "amqp" and is_quorum(queue),
        retry_exchange=retry_exchange_name(service) if kind == "amqp" else "",
        backend=_json_backend(app),
    )
    register_tasks(app, service, handlers, **task_options)
    batched = handlers.batched
    if batched:
        register_tasks(
            app,
            service,
            handlers,
            base=BatchEventTask,
            event_types=sorted(batched),
            task_name=batch_task_name,
            **task_options,
        )
    plan = IntakePlan(
        service=service,
        queue=queue,
        max_payload_bytes=conf.max_payload_bytes,
        unknown_type_wait=float(conf.unknown_type_wait),
        redis=redis,
        batching={t: (h.batch or 1, h.batch_wait) for t, h in batched.items()},
        senders=SenderCheck.of(service, conf) if kind == "amqp" else None,
        ordered=handlers.ordered,
    )
    set_plan(app, plan)
    app.steps["consumer"].add(EventIntake)  # a set: a second prepare_worker adds nothing
    _register_control_command()
    _warn_about_slow_settings(app)
    return plan


CONTROL_COMMAND = "event_tasks_status"


def _register_control_command() -> None:
    """Let ``events status`` ask this worker which service it consumes and what it holds.

    A remote-control command of its own (Celery's ``inspect``), registered only in a worker that
    consumes an event queue; it answers ``{"service", "queue", "active", "held"}``: deliveries of
    the service's events running now, and taken from the queue but not started yet.
    """
    from celery.worker import state as worker_state
    from celery.worker.control import Panel, inspect_command

    if CONTROL_COMMAND in Panel.data:
        return

    @inspect_command(name=CONTROL_COMMAND)
    def event_tasks_status(state: Any, **_: object) -> dict[str, object]:  # Any: Celery's control state (untyped)
        plan = plan_of(state.consumer.app)
        if plan is None:
            return {"service": None, "queue": None, "active": 0, "held": 0}
        suffix = f":{plan.service}"
        active = {r.id for r in list(worker_state.active_requests) if r.id.endswith(suffix)}
        held = {r.id for r in list(worker_state.reserved_requests) if r.id.endswith(suffix)} - active
        return {"service": plan.service, "queue": plan.queue.name, "active": len(active), "held": len(held)}


def _warn_about_slow_settings(app: Celery) -> None:
    """Say so when the host's settings make every event cost more than it should (never changed here)."""
    from django.conf import settings as django_settings

    conf = settings()

    if django_settings.DEBUG:
        log.warning(
            "DEBUG is on in this worker: Django keeps every query of every event in memory for the life of "
            "the process and runs them through its debug cursor; turn DEBUG off for workers"
        )
    limit = conf.handler_time_limit
    for alias, db in django_settings.DATABASES.items():
        wait = (db.get("OPTIONS") or {}).get("timeout", 5)
        if db.get("ENGINE", "").endswith("sqlite3") and limit and float(wait) >= limit:
            log.warning(
                "SQLite database %r waits %ss for a lock, not less than EVENT_TASKS_HANDLER_TIME_LIMIT (%ss): "
                "a hung handler holds the write lock, and the deliveries waiting behind it would pass "
                "their time limit too; set OPTIONS['timeout'] below the limit",
                alias,
                wait,
                limit,
            )
    pooled = any((db.get("OPTIONS") or {}).get("pool") for db in django_settings.DATABASES.values())
    if not app.conf.get("db_reuse_max") and not pooled:
        log.warning(
            "Celery's Django fixup closes the database connection before and after every task, so each event "
            "opens a new connection: set CELERY_DB_REUSE_MAX (e.g. 1000) with DATABASES[...]['CONN_MAX_AGE'] = "
            "None, or on PostgreSQL DATABASES[...]['OPTIONS']['pool'] = True"
        )
        return
    from django.db import router

    from ..models import ProcessedEvent

    alias = router.db_for_write(ProcessedEvent)  # the database of every event's duplicate mark
    db = django_settings.DATABASES.get(alias) or {}
    if not (db.get("OPTIONS") or {}).get("pool") and db.get("CONN_MAX_AGE", 0) == 0:
        # Every event task starts with close_old_connections() (a reused connection that broke is
        # dropped), which also closes a connection older than CONN_MAX_AGE: with 0, every one.
        log.warning(
            "Database %r has CONN_MAX_AGE = 0 (Django's default): each event task closes the connection its "
            "predecessor opened, so each event opens a new one despite CELERY_DB_REUSE_MAX (on SQLite in WAL "
            "mode the close also checkpoints the WAL); set DATABASES[%r]['CONN_MAX_AGE'] = None (or a number "
            "of seconds)%s",
            alias,
            alias,
            ", or OPTIONS['pool'] = True" if db.get("ENGINE", "").endswith("postgresql") else "",
        )


def _confirming_producer() -> AbstractContextManager[Producer]:
    """The fabric's producer on RabbitMQ (publisher confirms), for retries of event tasks."""
    fanout = publisher.default_publisher().transport
    assert isinstance(fanout, KombuFanout)  # used on RabbitMQ only, where the fan-out is kombu's
    return fanout.producer()


def _json_backend(app: Celery) -> Backend | None:
    """The result backend for event tasks: the host's, with JSON results.

    Results of event tasks are JSON whatever the host chose for its own (``result_serializer``);
    when the host already stores JSON, its backend is used as it is.
    """
    if (app.conf.result_serializer or "json") == "json" or app.conf.result_backend in (None, "", "disabled"):
        return None
    host = app.backend
    return type(host)(app=app, serializer="json", accept=["json"], url=getattr(host, "url", None))
