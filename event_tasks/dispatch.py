"""The consume path: one Celery task per event type a service consumes.

The task (named after the event type) checks the envelope and payload, builds the
:class:`~event_tasks.Event` and calls the service's handlers for that type:

* not a readable event (bad arguments, envelope, version, payload) → dead letter at once,
  never retried;
* a handler raises → retried in this service only (own queue, default exchange) with
  exponential backoff and jitter, capped below the Redis visibility timeout;
* still failing after ``EVENT_TASKS_MAX_RETRIES`` retries → dead letter with the exception and
  the attempt count;
* the message is acknowledged only after that (``acks_late``, ``reject_on_worker_lost``);
* each handler runs once per event (``idempotency.apply``): a redelivered or replayed copy is
  skipped for the handlers that already applied it;
* a delivery whose worker died ``EVENT_TASKS_MAX_REDELIVERIES`` times (a poison message) goes
  to the dead letters instead of killing the next worker.
"""
from __future__ import annotations

import logging
import random
import traceback
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.exceptions import Reject
from celery.worker.request import Request
from celery.worker.state import task_ready

from . import catalog, deadletters, idempotency
from .envelope import Event, read_envelope
from .errors import DeadLettered, EventValidationError, InvalidEvent

if TYPE_CHECKING:
    from celery import Celery

    from .handlers import ServiceHandlers

log = logging.getLogger(__name__)


def backoff(retries: int, base: float, cap: float) -> float:
    """Seconds before retry ``retries + 1``: exponential, with jitter (half fixed, half random).

    Celery's own helper takes whole seconds only; sub-second bases matter in tests.
    """
    ceiling = min(cap, base * (2 ** retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class EventRequest(Request):
    """A delivery in the worker. A hard time limit is handled like a lost worker: the delivery goes
    back to its queue (not acked, not marked failed) and counts as a redelivery, so a handler that
    always runs too long ends as a ``worker_lost`` dead letter instead of looping. Billiard can
    fire a hard-timeout timer late, after the job finished; requeueing is then harmless (the copy
    is a duplicate), where failing and acking would have lost or falsely dead-lettered it."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if soft:
            return super().on_timeout(soft, timeout)
        task_ready(self)
        log.error("hard time limit (%ss) exceeded for %s[%s]; the delivery goes back to its queue",
                  timeout, self.name, self.id)
        self.reject(requeue=True)


class EventTask(Task):
    """Base class of every event task; one subclass instance per (service, event type)."""

    Request = EventRequest

    acks_late = True
    reject_on_worker_lost = True
    typing = False
    track_started = False
    # Set per service by register_tasks():
    service: str = ""
    queue_name: str = ""
    handlers: ServiceHandlers
    retry_backoff_base: float = 2.0
    retry_backoff_cap: float = 300.0
    max_redeliveries: int = 3

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            event = self.read_event(args, kwargs)
            self.check_redelivery()
        except InvalidEvent as exc:
            self.dead_letter(exc.reason, exc.detail, args, kwargs)
        except Exception as exc:   # our own bookkeeping failed (database down): keep the event
            raise self.retry_later(exc, forever=True) from exc
        handlers = self.handlers.for_type(event.type)
        applied, skipped = [], []
        try:
            for handler in handlers:
                (applied if idempotency.apply(self.service, handler, event) else skipped).append(handler.name)
        except Exception as exc:
            if self.request.retries >= self.max_retries:
                self.dead_letter("max_retries", f"{type(exc).__name__}: {exc}", args, kwargs,
                                 traceback=traceback.format_exc())
            raise self.retry_later(exc) from exc
        return {"event": event.id, "service": self.service, "applied": applied, "duplicates": skipped}

    def retry_later(self, exc: BaseException, forever: bool = False) -> BaseException:
        """Send this delivery back to this service's own queue after a backoff (Celery ``retry``)."""
        retries = self.request.retries
        countdown = backoff(retries, self.retry_backoff_base, self.retry_backoff_cap)
        log.warning("%s: %s failed (attempt %d), retrying in %.2fs: %r", self.service, self.request.id,
                    retries + 1, countdown, exc)
        try:
            # queue= routes through the default exchange to this service's queue only.
            return self.retry(exc=exc, countdown=countdown, queue=self.queue_name,
                              max_retries=None if forever else self.max_retries)
        except Reject as rejected:
            # Celery could not publish the retry (broker down) and would drop the message
            # (requeue=False). Keep it: back to this service's queue, or the broker redelivers it.
            log.warning("%s: could not schedule the retry of %s (%r); the delivery goes back to its queue",
                        self.service, self.request.id, rejected.reason)
            raise Reject(rejected.reason, requeue=True) from exc

    def dead_letter(self, reason: str, detail: str, args: Any, kwargs: Any, traceback: str = "") -> None:
        """Store the event in this service's dead letters, then fail the task (acked, not retried).

        If the dead letter cannot be stored (database down), the delivery is retried instead:
        the event is never acknowledged before it is recorded somewhere.
        """
        try:
            self.record_dead_letter(reason, detail, self.request.id or "", args, kwargs, traceback)
        except Exception as exc:
            raise self.retry_later(exc, forever=True) from exc
        raise DeadLettered(reason, detail)

    def record_dead_letter(self, reason: str, detail: str, task_id: str, args: Any, kwargs: Any,
                           traceback: str = "") -> None:
        envelope = args[0] if args and isinstance(args[0], dict) else {}
        deadletters.record(service=self.service, reason=reason, detail=detail, traceback=traceback,
                           event_id=deadletters.event_id_of(envelope, task_id), event_type=self.name,
                           task_id=task_id, attempts=(self.request.retries or 0) + 1,
                           raw={"args": args, "kwargs": kwargs})

    def check_redelivery(self) -> None:
        """Give up on a delivery that killed its worker too often (it would loop forever)."""
        request = self.request
        redelivered = (request.delivery_info or {}).get("redelivered") or (request.headers or {}).get("redelivered")
        if not redelivered:
            return
        count = idempotency.count_redelivery(request.id, request.retries or 0)
        if count >= self.max_redeliveries:
            raise InvalidEvent("worker_lost", f"worker lost {count} times while handling this event (it died "
                                              f"or passed the time limit; EVENT_TASKS_MAX_REDELIVERIES="
                                              f"{self.max_redeliveries})")

    def read_event(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Event:
        if kwargs or len(args) != 2:
            raise InvalidEvent("invalid_arguments",
                               f"expected the arguments (envelope, data), got {len(args)} positional "
                               f"and {sorted(kwargs)} keyword arguments")
        envelope = read_envelope(args[0], expected_type=self.name)
        entry = catalog.get(self.name)
        try:
            data = entry.decode(args[1])
        except EventValidationError as exc:
            raise InvalidEvent("invalid_payload", f"payload is not a valid {self.name}; bad fields: {exc.describe()}") from None
        return Event(id=envelope["id"], type=envelope["type"], source=envelope["source"],
                     time=envelope["time"], key=envelope.get("key"), data=data)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Failures that did not pass through :meth:`dead_letter` (a bug in the fabric): record them."""
        if isinstance(exc, DeadLettered):
            return
        try:
            self.record_dead_letter("internal_error", f"{type(exc).__name__}: {exc}", task_id, args, kwargs,
                                    str(einfo.traceback) if einfo is not None else "")
        except Exception:
            log.exception("%s: could not store the dead letter of %s", self.service, task_id)


def register_tasks(app: Celery, service: str, handlers: ServiceHandlers, *, queue_name: str,
                   max_retries: int, backoff_base: float, backoff_cap: float,
                   max_redeliveries: int = 3, time_limit: float | None = None) -> list[str]:
    """Register one task per event type ``handlers`` consume, on ``app``. Returns the names."""
    names = []
    for event_type in handlers.event_types:
        attrs = {"name": event_type, "service": service, "queue_name": queue_name,
                 "handlers": handlers, "max_retries": max_retries,
                 "retry_backoff_base": backoff_base, "retry_backoff_cap": backoff_cap,
                 "max_redeliveries": max_redeliveries, "time_limit": time_limit,
                 "__module__": __name__}
        task_cls = type(f"EventTask_{service}_{event_type.replace('.', '_')}", (EventTask,), attrs)
        app.register_task(task_cls())
        names.append(event_type)
    return names
