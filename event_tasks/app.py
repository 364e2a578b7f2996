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
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec

from celery import signals
from kombu import Exchange, Queue

from .brokers.topology import declare, put_queue
from .conf import settings
from .errors import EventTasksError
from .send import publisher

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
P = ParamSpec("P")


def install(app: Celery) -> Celery:
    """Let ``app``'s processes send events, and its workers consume their service's event queue."""
    if getattr(app, "_event_tasks_installed", False):
        return app
    setattr(app, "_event_tasks_installed", True)  # noqa: B010 - a mark of the fabric's own: Celery declares no such attribute
    publisher.use_app(app)
    signals.import_modules.connect(_on_import_modules, sender=app, weak=False)
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid=f"event_tasks.worker_init.{id(app)}")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid=f"event_tasks.worker_ready.{id(app)}")
    return app


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
    app: Celery | None = getattr(sender, "app", None)  # the worker (celery.apps.worker.Worker) that starts
    if app is None or not getattr(app, "_event_tasks_installed", False):
        return
    conf = settings()
    if not conf.service:
        return
    queues = app.amqp.queues
    name = conf.queue_name(conf.require_service())
    if name not in queues:
        return
    if queues._consume_from is None:  # type: ignore[attr-defined]  # celery-types lack Queues._consume_from; no -Q: Celery consumes every known queue; events are opt-in
        queues.deselect([name])
        return
    if name not in queues.consume_from:
        return
    from .consume.worker import prepare_worker  # the consume side needs Django's models: import it now

    prepare_worker(app, conf)


def _on_worker_ready(sender: object = None, **_: object) -> None:
    # Celery's consumer declared the queue and its bindings; also drop bindings of a handler
    # that was removed, or its events would keep arriving as "unknown type".
    app: Celery | None = getattr(sender, "app", None)  # the worker's consumer (celery.worker.consumer.Consumer)
    if app is None or not getattr(app, "_event_tasks_installed", False):
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
