"""Deliveries whose pool process was lost: it died, or it ran past the hard time limit.

:class:`EventRequest` is the event tasks' Celery request (``EventTask.Request``): it runs in the
worker's main process, so it can act when the pool process running the handlers is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

# billiard's stubs lack ExceptionWithTraceback (billiard/einfo.py defines it)
from billiard.einfo import ExceptionInfo, ExceptionWithTraceback  # type: ignore[attr-defined]
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery.worker.request import Request
from celery.worker.state import task_ready
from kombu import Producer
from kombu.utils.encoding import safe_repr

from ..brokers.message import LOST_HEADER, TIMEOUTS_HEADER
from ..brokers.rabbitmq import delays
from .ordering import RetryInPlace, gate_of

if TYPE_CHECKING:
    from celery import Celery
    from kombu.message import Message

log = logging.getLogger(__name__)


class SendsBack(Protocol):
    """What sending a delivery back needs of its event task (``dispatch.EventTask`` has it)."""

    service: str
    queue_name: str
    retry_exchange: str  # RabbitMQ: events.<service>.retry; "" (the default exchange) on Redis
    retry_producer: Callable[[], AbstractContextManager[Producer]] | None
    app: Celery


# How hard a worker tries to publish a delivery back to its own queue (retry, send back, batch split)
# before it leaves the message to the broker instead.
REQUEUE_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class RouteBack(TypedDict):
    """Where a delivery sent back goes, as Celery's publish options (:func:`route_back`)."""

    queue: str
    exchange: str
    routing_key: str
    exchange_type: str
    countdown: float


def route_back(queue_name: str, countdown: float, broker_delays: bool, retry_exchange: str = "") -> RouteBack:
    """Celery's publish options that bring a delivery back to ``queue_name`` (and to no other queue)
    after ``countdown`` seconds.

    ``queue``, ``exchange`` and ``routing_key`` are all given, so neither the original delivery
    info (the topic exchange on RabbitMQ) nor the host's routes or default exchange can send it
    anywhere else. Classic queues and Redis: to the queue with an ETA the worker waits for, through
    ``retry_exchange`` (RabbitMQ: the service's own direct exchange ``events.<service>.retry``, so
    its broker user needs no write on the default exchange, decision 0017; Redis: ``""``, kombu's
    default exchange, straight to the list). ``broker_delays`` (quorum queues): through the delay
    levels (``brokers.rabbitmq.delays``), with no ETA: the broker holds it for ``countdown``
    seconds, rounded up to a whole second.
    """
    if broker_delays:
        return {
            "queue": queue_name,
            "exchange": delays.FIRST_LEVEL,  # declared by the intake (topology.declare_quorum_paths)
            "routing_key": delays.delayed_routing_key(queue_name, countdown),
            "exchange_type": "topic",
            "countdown": 0,
        }
    return {
        "queue": queue_name,
        "exchange": retry_exchange,
        "routing_key": queue_name,
        "exchange_type": "direct",
        "countdown": countdown,
    }


class EventRequest(Request):
    """A delivery in the worker's main process.

    When the pool process running the handlers is lost (it died, or the delivery passed its hard
    time limit and billiard kills it), Celery would record a failure and acknowledge the message
    (time limit), or requeue it with nothing but the broker's ``redelivered`` flag (lost process).
    Here the delivery is sent back to its service's queue as a copy that counts the loss in its
    headers (:data:`~event_tasks.brokers.message.TIMEOUTS_HEADER`, :data:`~event_tasks.brokers.message.LOST_HEADER`),
    then the original is acknowledged; the task dead-letters it (``time_limit``, ``worker_lost``)
    once the count reaches ``EVENT_TASKS_MAX_REDELIVERIES``. Nothing here touches the database:
    a hung handler may hold its locks (SQLite's write lock, a row lock) until it is killed, and
    the main process must keep serving the other pool processes. If the copy cannot be
    published, the message goes back to the queue as it is.
    """

    # Celery's Request has these (class defaults, _message set in __init__); celery's stubs lack them.
    _already_cancelled: bool
    _already_revoked: bool
    _message: Message

    def on_failure(self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, (SystemExit, KeyboardInterrupt)) and not (self._already_cancelled or self._already_revoked):
            exc = WorkerLostError(f"the pool process exited ({exc!r})")  # as Celery reads it
        gate = gate_of(self._message)
        if isinstance(exc, RetryInPlace) and gate is not None:  # an ordered delivery: its key stays held
            task_ready(self)
            gate.again(self._message, exc.countdown, "retries")
            self.send_event("task-retried", exception=safe_repr(exc.reason), traceback="")  # type: ignore[attr-defined]  # celery's stubs lack Reject.reason
            return None
        if isinstance(exc, (TimeLimitExceeded, WorkerLostError)):
            task_ready(self)
            self.send_back(TIMEOUTS_HEADER if isinstance(exc, TimeLimitExceeded) else LOST_HEADER, exc)
            return None
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if soft:
            super().on_timeout(soft, timeout)
            return
        task_ready(self)
        self.send_back(TIMEOUTS_HEADER, TimeLimitExceeded(timeout))  # usually done already in on_failure

    def send_back(self, header: str, exc: BaseException) -> None:
        if self.acknowledged or getattr(self, "_event_tasks_sent_back", False):
            return
        self._event_tasks_sent_back = True
        message = self._message
        task = cast("SendsBack", self.task)  # cast: EventRequest is the Request of event tasks only
        gate = gate_of(message)
        if gate is not None and gate.again(message, 0, header):  # ordered: runs again where it is
            log.error("%s: %s lost its pool process (%r); it runs again, its key held", task.service, self.id, exc)
            return
        if getattr(message, "parts", None) is not None:
            # a batch of deliveries: all of them go back and come again one by one
            log.error(
                "%s: batch %s lost its pool process (%r); its events go back to the queue", task.service, self.id, exc
            )
            self.reject(requeue=True)
            return
        headers: dict[str, Any] = dict(message.headers)  # Any: header values are JSON (kombu's stubs say str)
        headers[header] = int(headers.get(header) or 0) + 1
        try:
            with send_back_producer(task) as producer:
                producer.publish(
                    message.body,
                    exchange=task.retry_exchange,
                    routing_key=task.queue_name,
                    headers=headers,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=2,
                    retry=True,
                    retry_policy=REQUEUE_RETRY,
                )
        except Exception as send_exc:  # noqa: BLE001 - the broker keeps the original instead
            log.error(
                "%s: could not send %s back after %r (%r); it goes back to the queue as it is",
                task.service,
                self.id,
                exc,
                send_exc,
            )
            self.reject(requeue=True)
            return
        self.acknowledge()
        log.error(
            "%s: %s lost its pool process (%r); sent back to %s (%s=%d)",
            task.service,
            self.id,
            exc,
            task.queue_name,
            header,
            headers[header],
        )
        self.send_event("task-retried", exception=safe_repr(exc), traceback="")


def send_back_producer(task: SendsBack) -> AbstractContextManager[Producer]:
    """The producer a delivery goes back to its queue with (the confirming one on RabbitMQ)."""
    return task.retry_producer() if task.retry_producer is not None else task.app.producer_or_acquire()
