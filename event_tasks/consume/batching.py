"""Batched consumption: ``@consumer(TYPE, batch=N)`` handlers take a list of events at a time.

* The worker's intake (``intake``) hands fresh deliveries of a batched type (first attempt, not
  redelivered) to a :class:`Batcher`, which holds them for up to ``batch_wait`` seconds or until
  ``N`` are there, then hands Celery one :class:`BatchMessage` standing for all of them: one task
  ``<type>:batch``, one pool job.
* :class:`BatchEventTask` checks every event (an unreadable one is dead-lettered alone), then
  runs the handler on the readable ones in **one transaction** with one bulk duplicate mark
  (:func:`deliver_batch`), and stores the batch's SUCCESS row in it. The messages are
  acknowledged together after that (``acks_late``), and all of them come back if the worker dies.
* A batch whose handler raises is **split**: each event goes back to the service's queue as an
  ordinary single delivery (its own task id ``<event id>:<service>``, attempt 2, backoff), so
  one bad event is retried or dead-lettered alone and the others are applied on their own.
  Redeliveries and retries are never batched, so poison messages are counted one by one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery.exceptions import Reject
from django.db import close_old_connections, transaction
from django.db.models import F
from kombu.asynchronous.timer import Entry, Timer
from kombu.message import Message
from kombu.serialization import prepare_accept_content

from ..brokers.message import ARGSREPR_LIMIT, LOST_HEADER, TIMEOUTS_HEADER, task_id
from ..envelope import Event
from ..errors import InvalidEvent
from ..handlers import Handler
from ..models import ProcessedEvent
from ..store import deadletters
from .delivery import backoff, read_event
from .dispatch import EventTask
from .lost import REQUEUE_RETRY, RouteBack, route_back

log = logging.getLogger(__name__)
BATCH_SUFFIX = ":batch"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class _SplitOptions(RouteBack):
    """``send_task`` options of one event a split batch sends back to the service's queue."""

    task_id: str
    retries: int
    serializer: str
    root_id: str
    retry_policy: Mapping[str, float]


def batch_task_name(event_type: str) -> str:
    return event_type + BATCH_SUFFIX


class BatchMessage(Message):
    """One message standing for several deliveries: acking, rejecting or requeueing it does the same
    to each of them (each keeps its own delivery tag on the channel)."""

    def __init__(self, parts: Sequence[Message], **kwargs: Any) -> None:  # Any: kombu Message's own arguments
        super().__init__(**kwargs)
        self.parts = list(parts)

    def ack(self, multiple: bool = False) -> None:
        pending = [part for part in self.parts if not part.acknowledged]
        ack_many = getattr(getattr(self.channel, "qos", None), "ack_many", None)
        if ack_many is not None and pending:  # the Redis event channel: one round trip for the batch
            ack_many([part.delivery_tag for part in pending])
            for part in pending:
                part._state = "ACK"  # type: ignore[attr-defined]  # kombu's stubs lack Message._state
        else:
            for part in pending:
                part.ack()
        self._state = "ACK"

    def reject(self, requeue: bool = False) -> None:
        # Always back to the queue: a batch Celery refuses or gives up on must not drop its events;
        # they come back redelivered, and redeliveries are handled one by one.
        for part in self.parts:
            if not part.acknowledged:
                part.reject(requeue=True)
        self._state = "REQUEUED"

    def requeue(self) -> None:
        self.reject(requeue=True)


def batch_message(event_type: str, service: str, parts: Sequence[Message]) -> BatchMessage:
    """The message Celery runs for ``parts`` (each already decoded by the intake)."""
    items = [part.decode()[0] for part in parts]
    body = json.dumps([[items], {}, _EMBED], separators=(",", ":"))
    batch_id = f"batch-{uuid.uuid4()}:{service}"
    first = parts[0]
    headers = {
        **first.headers,
        "task": batch_task_name(event_type),
        "id": batch_id,
        "root_id": batch_id,
        "parent_id": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": f"({len(parts)} events: {', '.join(str(i[0].get('id')) for i in items)[:ARGSREPR_LIMIT]})",
    }
    return BatchMessage(
        parts,
        body=body,
        delivery_tag=f"{batch_id}",
        content_type="application/json",
        content_encoding="utf-8",
        delivery_info=dict(first.delivery_info or {}),
        properties={**(first.properties or {}), "correlation_id": batch_id},
        headers=headers,
        accept=prepare_accept_content(["json"]),
        channel=first.channel,
    )


class Batcher:
    """Holds fresh deliveries of batched types until a batch is full or ``batch_wait`` passed."""

    def __init__(
        self, timer: Timer, service: str, handler: Callable[[Message], object], specs: Mapping[str, tuple[int, float]]
    ) -> None:
        self.timer = timer
        self.service = service
        self.handler = handler
        self.specs = specs
        self.buffers: dict[str, list[Message]] = {}
        self.timers: dict[str, Entry] = {}

    def wants(self, name: str, message: Message) -> bool:
        headers = message.headers
        return (
            name in self.specs
            and not headers.get("retries")
            and not headers.get("eta")
            and not (message.delivery_info or {}).get("redelivered")
            and not headers.get("redelivered")
            and not headers.get(LOST_HEADER)
            and not headers.get(TIMEOUTS_HEADER)
        )

    def add(self, name: str, message: Message) -> None:
        buffer = self.buffers.setdefault(name, [])
        buffer.append(message)
        size, wait = self.specs[name]
        if len(buffer) >= size:
            self.flush(name)
        elif name not in self.timers:
            self.timers[name] = self.timer.call_after(wait, self.flush, (name, True))

    def flush(self, name: str, from_timer: bool = False) -> None:
        entry = self.timers.pop(name, None)
        if entry is not None and not from_timer:
            entry.cancel()
        buffer = self.buffers.pop(name, [])
        if len(buffer) == 1:
            self.handler(buffer[0])
        elif buffer:
            self.handler(batch_message(name, self.service, buffer))

    def clear(self) -> None:
        for entry in self.timers.values():
            entry.cancel()
        self.timers.clear()
        self.buffers.clear()


def deliver_batch(
    service: str,
    handler: Handler,
    events: Sequence[Event],
    on_success: Callable[[list[str], list[str]], None] | None = None,
) -> tuple[list[str], list[str]]:
    """Apply ``events`` with ``handler`` in one transaction; ``(applied ids, duplicate ids)``."""
    ids = [e.id for e in events]
    with transaction.atomic():
        if handler.deduplicate:
            done = set(
                ProcessedEvent.objects.filter(handler=handler.name, event_id__in=ids).values_list("event_id", flat=True)
            )
            fresh = [e for e in events if e.id not in done]
            ProcessedEvent.objects.bulk_create(
                [ProcessedEvent(event_id=e.id, handler=handler.name, service=service, event_type=e.type) for e in fresh]
            )
            if done:
                ProcessedEvent.objects.filter(handler=handler.name, event_id__in=done).update(
                    duplicates=F("duplicates") + 1
                )
        else:
            fresh, done = list(events), set()
        if fresh:
            assert handler.func is not None  # discovery binds the function of every handler a worker runs
            handler.func(fresh)
        applied, duplicates = [e.id for e in fresh], [i for i in ids if i in done]
        if on_success is not None:
            on_success(applied, duplicates)
    return applied, duplicates


class BatchEventTask(EventTask):
    """``<type>:batch``: several deliveries of one type, run by the type's batch handler."""

    event_type: str = ""

    # Any: the batch's items and the result are JSON; run takes the one list of items, not an event's arguments
    def run(self, items: list[Any]) -> dict[str, Any]:  # type: ignore[override]
        close_old_connections()
        events: list[Event] = []
        unreadable: list[tuple[Any, InvalidEvent]] = []  # Any: an item as it came, JSON
        for item in items if isinstance(items, list) else []:
            try:
                events.append(
                    read_event(self.event_type, tuple(item) if isinstance(item, list) else (item,), {}, self.service)
                )
            except InvalidEvent as exc:
                unreadable.append((item, exc))
        if unreadable:
            try:
                for item, invalid in unreadable:
                    envelope = item[0] if isinstance(item, list) and item and isinstance(item[0], dict) else {}
                    event_id = str(envelope.get("id") or "")
                    deadletters.record(
                        service=self.service,
                        reason=invalid.reason,
                        detail=invalid.detail,
                        event_id=event_id,
                        event_type=self.event_type,
                        task_id=task_id(event_id, self.service),
                        raw={"args": item, "kwargs": {}},
                    )
            except Exception as exc:  # database down: nothing is acknowledged before it is recorded
                raise Reject(f"could not store dead letters: {exc!r}", requeue=True) from exc
        if not events:
            return {"events": 0, "dead_letters": len(unreadable)}
        (handler,) = self.handlers.for_type(self.event_type)
        try:
            applied, duplicates = deliver_batch(self.service, handler, events, self.store_batch_success)
        except Exception as exc:  # noqa: BLE001 - any failure: each event goes on alone
            log.warning(
                "%s: batch of %d %s failed (%r); splitting it into single deliveries",
                self.service,
                len(events),
                self.event_type,
                exc,
            )
            self.split(events, items)
            return {"events": len(events), "split": True, "error": repr(exc)}
        return {
            "events": len(events),
            "applied": len(applied),
            "duplicates": len(duplicates),
            "dead_letters": len(unreadable),
        }

    def store_batch_success(self, applied: list[str], duplicates: list[str]) -> None:
        assert self.request.id is not None  # a delivery always has its task id
        self.backend.store_result(
            self.request.id,
            {"service": self.service, "applied": applied, "duplicates": duplicates},
            "SUCCESS",
            request=self.request,
        )

    def split(self, events: Sequence[Event], items: list[Any]) -> None:  # Any: the batch's items, JSON
        """Send each event back to this service's queue as a single delivery (attempt 2)."""
        by_id = {item[0]["id"]: item for item in items if isinstance(item, list) and isinstance(item[0], dict)}
        try:
            for event in events:
                options: _SplitOptions = {
                    **route_back(
                        self.queue_name,
                        backoff(0, self.retry_backoff_base, self.retry_backoff_cap),
                        self.broker_delays,
                        self.retry_exchange,
                    ),
                    "task_id": task_id(event.id, self.service),
                    "retries": 1,
                    "serializer": "json",
                    "root_id": event.id,
                    "retry_policy": REQUEUE_RETRY,
                }
                if self.retry_producer is None:
                    self.app.send_task(self.event_type, args=by_id[event.id], **options)
                else:
                    with self.retry_producer() as producer:
                        self.app.send_task(self.event_type, args=by_id[event.id], producer=producer, **options)
        except Exception as exc:  # broker down: keep the whole batch, it comes back (and is not batched again)
            raise Reject(f"could not split the batch: {exc!r}", requeue=True) from exc
