"""The Celery integration: ``install(app)`` on the host service's own Celery app.

``install`` changes nothing of the host's configuration: not its tasks, routes, default queue or
exchange, serializers, accepted content, task ids, consumer, transport or producer pool. It

* remembers the app, so ``send_event`` publishes to its broker (on connections of the fabric's
  own, ``fanout``); a process that only sends (web, shell, management command) does nothing
  else: no handlers imported, no tasks registered, no broker checks;
* in a worker whose ``-Q`` names the service's event queue ``events.<service>`` (alone, or beside
  the host's own queues), at start-up:

  - discovers the service's handlers in the installed apps and registers one task per event
    type they consume (``dispatch``), routed explicitly to that queue; JSON results even when the
    host stores its own results otherwise;
  - adds the queue (bound on the topic exchange ``events`` by the handlers' patterns, through
    the default exchange for everything else) and the intake step (``intake``) that consumes it
    on a channel of its own, with dead letters for unreadable messages and per-copy task ids;
  - Redis: the crash-safe consume step of ``redis_transport`` on that channel (every other
    channel behaves as kombu's), a start-up check of the broker's persistence, retry countdowns
    below the visibility timeout; RabbitMQ: retries published with confirms, and a refusal of
    handler time limits past ``consumer_timeout``;
  - prunes bindings of handlers that were removed, once the worker is ready.

A worker that does not consume the event queue registers nothing. See
docs/decisions/0005-leave-the-host-alone.md.

This module is imported by the host's Celery module, usually before Django is set up, so it
imports nothing that needs Django's models; the consume side (``worker``) is imported when a
worker starts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ParamSpec

from celery import signals
from kombu import Exchange, Queue

from .brokers.topology import declare, put_queue
from .conf import SERVICE_NAME, settings
from .errors import EventQueueMismatch, EventTasksError
from .send import publisher

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
P = ParamSpec("P")


def install(app: Celery) -> Celery:
    """Let ``app``'s processes send events, and its workers consume their service's event queue."""
    if installed(app):
        return app
    setattr(app, "_event_tasks_installed", True)  # noqa: B010 - a mark of the fabric's own: Celery declares no such attribute
    publisher.use_app(app)
    signals.import_modules.connect(_on_import_modules, sender=app, weak=False)
    watch_workers()
    return app


def installed(app: Celery) -> bool:
    """Whether ``app`` was handed to :func:`install` (directly, or by :func:`watch_workers`)."""
    return bool(getattr(app, "_event_tasks_installed", False))


def watch_workers() -> None:
    """Wire every Celery worker of this process that consumes an event queue, whatever its app.

    Called by :func:`install` and by the Django app's ``ready()`` (``event_tasks`` in
    ``INSTALLED_APPS``): a worker whose app was never passed to :func:`install` (a service that set
    ``EVENT_TASKS_CELERY_APP`` instead, ``consume_events``, a second Celery app of the project)
    would otherwise take ``events.<service>`` with Celery's own consumer, which discards every
    event as an unregistered task. Such a worker is installed when it starts; a worker that
    consumes another service's event queue, or an event queue without ``EVENT_TASKS_SERVICE``,
    refuses to start (:class:`~event_tasks.errors.EventQueueMismatch`).
    """
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="event_tasks.worker_init")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="event_tasks.worker_ready")


def event_queues(names: Iterable[str], prefix: str) -> list[str]:
    """The fabric's service queues among ``names`` (``<prefix><service>``; not ``events tail``'s)."""
    return sorted(n for n in names if n.startswith(prefix) and SERVICE_NAME.match(n[len(prefix) :]))


def _stop_on_misconfiguration(handler: Callable[P, None]) -> Callable[P, None]:
    """Celery logs and swallows exceptions of signal handlers; a misconfigured service must not
    start as if nothing were wrong, so the worker exits with the error's message instead."""

    @functools.wraps(handler)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            handler(*args, **kwargs)
        except EventTasksError as exc:
            log.critical("event-tasks: %s", exc)
            raise SystemExit(f"event-tasks: {exc}") from exc

    return guarded


@_stop_on_misconfiguration
def _on_import_modules(sender: Celery, **_: object) -> None:
    """Worker start-up, before ``-Q`` is applied: make the event queue's name known, so ``-Q`` can
    name it even where the host turned off Celery's creation of missing queues. The queue with its
    bindings replaces this entry in :func:`prepare_worker`, only in a worker that consumes it.
    """
    conf = settings()
    if not conf.service:
        return
    name = conf.queue_name(conf.require_service())
    if name not in sender.amqp.queues:
        put_queue(sender, Queue(name, exchange=Exchange(""), routing_key=name, durable=True))


@_stop_on_misconfiguration
def _on_worker_init(sender: object = None, **_: object) -> None:
    """A worker starts (after ``-Q`` is applied, before its consumer exists): wire the event side."""
    app: Celery | None = getattr(sender, "app", None)  # the worker (celery.apps.worker.Worker) that starts
    if app is None:
        return
    conf = settings()
    queues = app.amqp.queues
    if queues._consume_from is None:  # type: ignore[attr-defined]  # celery-types lack Queues._consume_from; no -Q: Celery consumes every known queue; events are opt-in
        known = event_queues(queues, conf.queue_prefix)
        if known:
            queues.deselect(known)
        return
    consumed = event_queues(queues.consume_from, conf.queue_prefix)
    if not consumed:
        return
    if not conf.service:
        raise EventQueueMismatch(consumed, None)
    name = conf.queue_name(conf.require_service())
    if consumed != [name]:
        raise EventQueueMismatch([q for q in consumed if q != name], conf.service)
    if not installed(app):
        log.warning(
            "event-tasks: Celery app %r consumes %s but was not passed to event_tasks.app.install(): installed now "
            "(call install(app) where the app is created to make it explicit)",
            app.main,
            name,
        )
        install(app)
    from .consume.worker import prepare_worker  # the consume side needs Django's models: import it now
    from .ops.live_queues import refuse_mismatched_at_start

    plan = prepare_worker(app, conf)
    refuse_mismatched_at_start(app, [plan.queue])  # a queue of another type: one line, before Celery declares it


def _on_worker_ready(sender: object = None, **_: object) -> None:
    # Celery's consumer declared the queue and its bindings; also drop bindings of a handler
    # that was removed, or its events would keep arriving as "unknown type".
    app: Celery | None = getattr(sender, "app", None)  # the worker's consumer (celery.worker.consumer.Consumer)
    if app is None or not installed(app):
        return
    from .consume.intake import plan_of  # the consume side, imported once a worker runs (see above)

    plan = plan_of(app)
    if plan is None:
        return
    try:
        with app.connection_for_write() as conn:
            declare(conn, [plan.queue])
    except Exception:
        log.exception("could not prune stale subscriptions of %s", plan.queue.name)
