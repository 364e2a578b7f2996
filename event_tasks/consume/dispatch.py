"""The consume path: one Celery task per event type a service consumes.

The task (named after the event type) checks the envelope and payload, builds the
:class:`~event_tasks.Event` and runs the service's handlers for that type (``delivery.deliver``):

* not a readable event (bad arguments, envelope, version, payload) → dead letter at once,
  never retried;
* every handler runs, each in its own transaction with its duplicate mark (``idempotency``);
  one that raises does not stop the others;
* a handler raised an exception it retries → the delivery is retried in this service only (own
  queue, default exchange) with exponential backoff and jitter, capped below the Redis
  visibility timeout; handlers that already applied the event skip it on the retry;
* a handler raised an exception it does not retry (``dont_retry``) → dead letter ``not_retried``;
  a failing handler is out of retries (``max_retries``) → dead letter ``max_retries``, with the
  exceptions and the attempt count;
* the message is acknowledged only after that (``acks_late``, ``reject_on_worker_lost``);
* a delivery whose worker died ``EVENT_TASKS_MAX_REDELIVERIES`` times (a poison message) goes
  to the dead letters instead of killing the next worker.

The decision itself, without Celery, is ``delivery.deliver`` (``event_tasks.testing.run_handlers``
uses it too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from celery import Task, states
from celery.exceptions import Reject
from django.db import close_old_connections

from ..brokers.message import LOST_HEADER, TIMEOUTS_HEADER
from ..errors import DeadLettered, InvalidEvent
from ..handlers import Handler, ServiceHandlers
from ..store import deadletters, idempotency
from .delivery import backoff, deliver, read_event
from .lost import REQUEUE_RETRY, EventRequest, route_back
from .ordering import HELD_HEADER, RetryInPlace

if TYPE_CHECKING:
    from billiard.einfo import ExceptionInfo
    from celery import Celery
    from celery.backends.base import Backend
    from kombu import Producer

log = logging.getLogger(__name__)


class EventTask(Task):
    """Base class of every event task; one subclass instance per (service, event type).

    Everything a host could configure app-wide for its own tasks is fixed here, per task:
    JSON, late acks, requeue on a lost worker, no typing checks. Results are stored where they
    carry information: Celery stores failures and retries; a delivery that succeeds at once
    stores nothing but its duplicate marks (one short transaction per event; Flower shows the
    delivery from task events); one that succeeds after a retry or a redelivery turns its row
    into SUCCESS, in the last handler's transaction.
    """

    # celery's stubs type Task.Request as str (a dotted path); Celery takes the class too
    Request = EventRequest  # type: ignore[assignment]

    serializer = "json"
    acks_late = True
    acks_on_failure_or_timeout = True
    reject_on_worker_lost = True
    typing = False
    track_started = False
    ignore_result = True
    store_errors_even_if_ignored = True
    # Set per service by register_tasks():
    service: str = ""
    event_type: str = ""
    queue_name: str = ""
    handlers: ServiceHandlers
    default_max_retries: int = 5
    retry_backoff_base: float = 2.0
    retry_backoff_cap: float = 300.0
    max_redeliveries: int = 3
    retry_producer: Callable[[], AbstractContextManager[Producer]] | None = None  # the producer retries go out with
    broker_delays = False  # quorum queues: retries wait in RabbitMQ's delay levels (lost.route_back)
    retry_exchange = ""  # RabbitMQ: events.<service>.retry, the way back to its queue (lost.route_back)
    ordered = False  # applied in order per key: retried in place by the main process (ordering)

    def run(self, *args: object, **kwargs: object) -> str:
        # Celery's Django fixup closes connections around tasks unless told to reuse them
        # (CELERY_DB_REUSE_MAX); a reused connection that broke is dropped here, before any query.
        close_old_connections()
        try:
            event = read_event(self.name, args, kwargs, self.service)
            tracked = self.check_redelivery()
        except InvalidEvent as exc:
            self.dead_letter(exc.reason, exc.detail, args, kwargs)
        except Exception as exc:  # our own bookkeeping failed (database down): keep the event
            raise self.retry_later(exc, forever=True) from exc
        # A result row exists only where an earlier attempt left one (RETRY, or a redelivery after a
        # lost worker): a first delivery that succeeds writes nothing but its duplicate marks.
        stored: list[bool] = []

        def store(applied: list[str], duplicates: list[str]) -> None:
            self.store_success(event.id, applied, duplicates)
            stored.append(True)

        earlier = bool(self.request.retries) or tracked
        try:
            outcome = deliver(
                self.service,
                self.handlers.for_type(event.type),
                event,
                retries=self.request.retries or 0,
                default_max_retries=self.default_max_retries,
                on_success=store if earlier else None,
            )
        finally:
            if tracked:
                self.finish_redelivery()
        if earlier and outcome.decision == "done" and not stored:
            store(outcome.applied, outcome.duplicates)  # no mark was written in this attempt
        if outcome.decision == "dead_letter":
            self.dead_letter(outcome.reason, outcome.detail, args, kwargs, traceback=outcome.traceback)
        if outcome.decision == "retry":
            failed = outcome.failures[0].exception
            raise self.retry_later(failed) from failed
        # What the worker's log line and Flower's task-succeeded event show (no result is stored:
        # ignore_result). A short string: Celery builds saferepr() of the return value for every
        # task, ~19 µs for the result dict, ~2 µs for this (measured).
        return (
            f"{event.id} {self.service}: applied {', '.join(outcome.applied) or '-'}; "
            f"duplicates {', '.join(outcome.duplicates) or '-'}"
        )

    def result(self, event_id: str, applied: list[str], duplicates: list[str]) -> dict[str, object]:
        return {"event": event_id, "service": self.service, "applied": applied, "duplicates": duplicates}

    def store_success(self, event_id: str, applied: list[str], duplicates: list[str]) -> None:
        """The delivery's SUCCESS row (what Flower's and the admin's result pages show)."""
        assert self.request.id is not None  # a delivery always has its task id
        self.backend.store_result(
            self.request.id, self.result(event_id, applied, duplicates), states.SUCCESS, request=self.request
        )

    def retry_later(self, exc: Exception, forever: bool = False) -> BaseException:
        """Send this delivery back to this service's own queue after a backoff (Celery ``retry``).

        ``queue``, ``exchange`` and ``routing_key`` are all given, so neither the original
        delivery info (the topic exchange on RabbitMQ) nor the host's routes or default exchange
        can send the retry anywhere but this service's queue.
        """
        retries = self.request.retries
        countdown = backoff(retries, self.retry_backoff_base, self.retry_backoff_cap)
        if self.ordered:  # back in the queue, the later events of its key would overtake it
            log.warning(
                "%s: %s failed (attempt %d), retrying in %.2fs, its key held: %r",
                self.service,
                self.request.id,
                retries + 1,
                countdown,
                exc,
            )
            return RetryInPlace(f"{type(exc).__name__}: {exc}", True, countdown)
        log.warning(
            "%s: %s failed (attempt %d), retrying in %.2fs%s: %r",
            self.service,
            self.request.id,
            retries + 1,
            countdown,
            " (held by RabbitMQ's delay levels)" if self.broker_delays else "",
            exc,
        )
        # Any: options of several types; celery's stubs list retry()'s keywords one by one, without exchange_type
        options: dict[str, Any] = {
            **route_back(self.queue_name, countdown, self.broker_delays, self.retry_exchange),
            "max_retries": None,
            "retry_policy": REQUEUE_RETRY,
        }
        try:
            if self.retry_producer is None:
                return self.retry(exc=exc, **options)
            with self.retry_producer() as producer:
                return self.retry(exc=exc, producer=producer, **options)
        except Reject as rejected:
            # Celery could not publish the retry (broker down) and would drop the message
            # (requeue=False). Keep it: back to this service's queue, or the broker redelivers it.
            # celery's stubs lack Reject.reason (set by Reject.__init__)
            reason = rejected.reason  # type: ignore[attr-defined]
            log.warning(
                "%s: could not schedule the retry of %s (%r); the delivery goes back to its queue",
                self.service,
                self.request.id,
                reason,
            )
            raise Reject(reason, requeue=True) from exc

    def dead_letter(
        self, reason: str, detail: str, args: Sequence[object], kwargs: Mapping[str, object], traceback: str = ""
    ) -> None:
        """Store the event in this service's dead letters, then fail the task (acked, not retried).

        If the dead letter cannot be stored (database down), the delivery is retried instead:
        the event is never acknowledged before it is recorded somewhere.
        """
        held = self.request.get(HELD_HEADER) if self.ordered else None
        if isinstance(held, dict) and held.get("count"):
            ids = ", ".join(map(str, held.get("ids") or ()))
            detail += (
                f" [ordered: it held back {held['count']} later event(s) of key {held.get('key')!r}"
                f"{f' ({ids})' if ids else ''}, which go on after it]"
            )
        try:
            self.record_dead_letter(reason, detail, self.request.id or "", args, kwargs, traceback)
        except Exception as exc:
            raise self.retry_later(exc, forever=True) from exc
        raise DeadLettered(reason, detail)

    def record_dead_letter(
        self,
        reason: str,
        detail: str,
        task_id: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        traceback: str = "",
    ) -> None:
        envelope = args[0] if args and isinstance(args[0], dict) else {}
        deadletters.record(
            service=self.service,
            reason=reason,
            detail=detail,
            traceback=traceback,
            event_id=deadletters.event_id_of(envelope, task_id),
            event_type=self.name,
            task_id=task_id,
            attempts=(self.request.retries or 0) + 1,
            raw={"args": args, "kwargs": kwargs},
        )

    def check_redelivery(self) -> bool:
        """Give up on a delivery that lost its pool process too often (it would loop forever).

        Counted: the copies the main process sent back after a time limit or a lost pool process
        (headers), and, for deliveries the broker redelivered (the whole worker went away), the
        earlier redelivered attempts that started here and never finished (:func:`idempotency.begin_redelivery`).
        A delivery requeued before its handlers started (prefetched at a warm shutdown or a
        dropped connection) is not counted. Returns whether the attempt is tracked (see
        :meth:`finish_redelivery`).
        """
        request = self.request
        limit = self.max_redeliveries
        timeouts = int(request.get(TIMEOUTS_HEADER) or 0)
        if timeouts >= limit:
            raise InvalidEvent(
                "time_limit",
                f"handlers ran past the hard time limit ({self.time_limit}s) "
                f"{timeouts} times (EVENT_TASKS_MAX_REDELIVERIES={limit})",
            )
        lost = int(request.get(LOST_HEADER) or 0)
        redelivered = bool((request.delivery_info or {}).get("redelivered") or request.get("redelivered"))
        if redelivered:
            assert request.id is not None  # a delivery always has its task id
            lost += idempotency.begin_redelivery(request.id, request.retries or 0)
        if lost >= limit:
            raise InvalidEvent(
                "worker_lost",
                f"worker lost {lost} times while handling this event (it died "
                f"while the handlers ran; EVENT_TASKS_MAX_REDELIVERIES={limit})",
            )
        return redelivered

    def finish_redelivery(self) -> None:
        try:
            assert self.request.id is not None  # a delivery always has its task id
            idempotency.end_redelivery(self.request.id, self.request.retries or 0)
        except Exception:
            log.exception("%s: could not clear the redelivery record of %s", self.service, self.request.id)

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        einfo: ExceptionInfo | None,
    ) -> None:
        """Failures that did not pass through :meth:`dead_letter` (a bug in the fabric): record them."""
        if isinstance(exc, DeadLettered):
            return
        try:
            self.record_dead_letter(
                "internal_error",
                f"{type(exc).__name__}: {exc}",
                task_id,
                args,
                kwargs,
                str(einfo.traceback) if einfo is not None else "",
            )
        except Exception:
            log.exception("%s: could not store the dead letter of %s", self.service, task_id)


def delivery_time_limit(handlers: Sequence[Handler], default: float | None) -> float | None:
    """A delivery's hard time limit: the largest limit of the handlers it runs."""
    limits = [h.time_limit if h.time_limit is not None else default for h in handlers]
    known = [x for x in limits if x is not None]
    return max(known) if known else None


def register_tasks(
    app: Celery,
    service: str,
    handlers: ServiceHandlers,
    *,
    queue_name: str,
    max_retries: int,
    backoff_base: float,
    backoff_cap: float,
    max_redeliveries: int = 3,
    time_limit: float | None = None,
    retry_producer: Callable[[], AbstractContextManager[Producer]] | None = None,
    broker_delays: bool = False,
    retry_exchange: str = "",
    backend: Backend | None = None,
    base: type[EventTask] | None = None,
    event_types: Sequence[str] | None = None,
    task_name: Callable[[str], str] = lambda event_type: event_type,
) -> list[str]:
    """Register one task per event type ``handlers`` consume (or of ``event_types``), on ``app``.

    ``base`` and ``task_name`` make the batch tasks (``batching``). Returns the names."""
    names = []
    for event_type in handlers.event_types if event_types is None else event_types:
        name = task_name(event_type)
        attrs = {
            "name": name,
            "event_type": event_type,
            "service": service,
            "queue_name": queue_name,
            "handlers": handlers,
            "default_max_retries": max_retries,
            "max_retries": None,
            "retry_backoff_base": backoff_base,
            "retry_backoff_cap": backoff_cap,
            "max_redeliveries": max_redeliveries,
            "time_limit": delivery_time_limit(handlers.for_type(event_type), time_limit),
            "retry_producer": staticmethod(retry_producer) if retry_producer else None,
            "broker_delays": broker_delays,
            "retry_exchange": retry_exchange,
            "ordered": event_type in handlers.ordered,
            "__module__": __name__,
        }
        cls = base or EventTask
        task_cls = type(f"{cls.__name__}_{service}_{name.replace('.', '_').replace(':', '_')}", (cls,), attrs)
        task = task_cls()
        if backend is not None:
            task.backend = backend
        app.register_task(task)
        names.append(name)
    return names
