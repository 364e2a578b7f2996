"""The send path: ``send_event(type, data, key=None)`` → one durable copy per subscribed queue.

1. look the type up in the catalog; 2. validate the payload with its schema; 3. build the
envelope, signed with the service's key if it has one (``signing``); 4. publish one copy to each
subscribed queue (``fanout``: a Lua script on Redis, the topic exchange with confirms on RabbitMQ).

Inside ``transaction.atomic()`` the event is written to the outbox table in the same transaction
instead, and published right after commit (or by the relay, ``relay.py``, if the broker is down
then). Rolled back: never published. A transaction open on another database alias than the
outbox's (``EVENT_TASKS_DATABASE``) holds the event until it commits (``_transactional``).

The process's publisher is built on first use from the Celery app the host handed to
``event_tasks.app.install(app)`` (its broker URL and transport options; nothing of the app is
changed), one per PID. Everything that can be built once (schemas, script, templates,
connections) is built once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celery.utils.imports import symbol_by_name
from django.db import connections as db_connections
from django.db import transaction as db_transaction

from .. import catalog, signing
from ..brokers.fanout import Fanout, fanout_for
from ..brokers.message import Prepared, encode_body
from ..conf import Settings, settings
from ..envelope import SPECVERSION, Event, format_time
from ..errors import BatchRefused, ConfigurationError, EventValidationError, PayloadTooLarge, PublishError

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
MAX_ID = 64  # the envelope id is stored in 64-character columns (dead letters, duplicate marks, outbox)


class Publisher:
    """Validates and publishes events for one producing service."""

    def __init__(
        self, app: Celery | None, service: str, conf: Settings | None = None, *, transport: Fanout | None = None
    ) -> None:
        self.app = app
        self.service = service
        self.conf = conf or settings()
        if transport is None:
            if app is None:
                raise ConfigurationError("a Publisher needs the Celery app (its broker) or a transport")
            transport = fanout_for(
                app.conf.broker_url or "",
                app.conf.broker_transport_options or {},
                self.conf,
                app.conf.broker_failover_strategy,
            )
        self.transport: Fanout = transport
        self.use_outbox = self.conf.outbox
        self.signer = signing.signer(self.conf)  # None: events go out unsigned (no EVENT_TASKS_SIGNING_KEY)
        self.stats: Counter[str] = Counter()

    def prepare(
        self, event_type: str, data: Mapping[str, object], key: str | None = None, event_id: str | None = None
    ) -> tuple[Event, Prepared]:
        """Validate and build one event and its task body; raises before anything is published."""
        entry = catalog.get(event_type)
        if key is not None and not isinstance(key, str):
            raise EventValidationError(event_type, {"key": [f"must be a string or None, not {type(key).__name__}"]})
        if event_id is not None and not (
            isinstance(event_id, str) and 0 < len(event_id) <= MAX_ID and event_id.isprintable() and ":" not in event_id
        ):
            raise EventValidationError(
                event_type,
                {"id": [f"must be a printable string of 1 to {MAX_ID} characters without ':' (e.g. a UUID), or None"]},
            )
        loaded, wire = entry.encode(data)
        event_id = event_id or str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        envelope: dict[str, object] = {
            "id": event_id,
            "type": event_type,
            "source": self.service,
            "time": format_time(now),
            "specversion": SPECVERSION,
            "key": key,
        }
        if self.signer is not None:  # signed once, here: the outbox row, the relay and a replay keep it
            envelope = self.signer.sign(envelope, wire)
        body, argsrepr = encode_body(envelope, wire)
        try:
            size = len(body) if body.isascii() else len(body.encode("utf-8"))  # bytes, as the consumer counts them
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON) passes every schema: no UTF-8 has it
            bad = not_utf8(wire) | ({} if key is None or _utf8(key) else {"key": [NOT_UTF8]})
            raise EventValidationError(event_type, bad or {"_payload": [NOT_UTF8]}) from None
        if size > self.conf.max_payload_bytes:
            raise PayloadTooLarge(event_type, size, self.conf.max_payload_bytes)
        event = Event(id=event_id, type=event_type, source=self.service, time=now, key=key, data=loaded)
        return event, Prepared(event_type, event_id, body, argsrepr)

    def send(
        self, event_type: str, data: Mapping[str, object], *, key: str | None = None, id: str | None = None
    ) -> Event:
        event, prepared = self.prepare(event_type, data, key, id)
        if self.use_outbox and self._transactional([(event, prepared)]):
            return event
        self.publish(*prepared)
        return event

    def _transactional(self, pairs: list[tuple[Event, Prepared]]) -> bool:
        """Inside a transaction (on any database): the events wait for its commit; True if they were taken.

        The outbox rows join the transaction of the outbox's database (``outbox.database()``) when
        it has one open. When only other databases have a transaction open, the events are
        published after those commit (never if one rolls back), and written to the outbox then if
        the broker does not take them: docs/decisions/0009-outbox-claims.md.
        """
        open_ = [c.alias for c in db_connections.all(initialized_only=True) if c.in_atomic_block]
        if not open_:
            return False
        from ..store import outbox  # needs Django's models; this module must import before setup

        using = outbox.database()
        if using in open_:
            outbox.enqueue_many(self, pairs, using)
            self.stats["outboxed"] += len(pairs)
        else:
            self._after_commit(open_, pairs, using)
            self.stats["after_commit"] += len(pairs)
        return True

    def _after_commit(self, aliases: list[str], pairs: list[tuple[Event, Prepared]], using: str) -> None:
        if aliases:
            first, rest = aliases[0], aliases[1:]
            db_transaction.on_commit(lambda: self._after_commit(rest, pairs, using), using=first, robust=True)
            return
        try:
            self.publish_many([prepared for _, prepared in pairs])
        except Exception as exc:  # noqa: BLE001 - whatever failed, the relay gets what did not go out
            from ..store import outbox

            refused = getattr(exc, "cause", None)
            if isinstance(refused, BatchRefused):
                pairs = [pair for i, pair in enumerate(pairs) if i not in set(refused.accepted)]
            outbox.write_unclaimed(pairs, using, exc)
            log.warning(
                "%d event(s) not published after commit (%r); written to the outbox, the relay sends them",
                len(pairs),
                getattr(exc, "cause", exc),
            )

    def send_many(self, items: Iterable[Sequence[Any]]) -> list[Event]:  # Any: (type, data[, key]), checked here
        """Validate every event first (one invalid: nothing is published), then publish them as one batch."""
        pairs = []
        for item in items:
            if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                raise TypeError(f"send_events takes (event_type, data) or (event_type, data, key) items, got {item!r}")
            pairs.append(self.prepare(item[0], item[1], item[2] if len(item) == 3 else None))
        events = [event for event, _ in pairs]
        if not pairs:
            return events
        if self.use_outbox and self._transactional(pairs):
            return events
        self.publish_many([prepared for _, prepared in pairs])
        return events

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """Publish prepared events as one batch; :class:`PublishError` (naming the first) if the broker fails."""
        try:
            copies = self.transport.publish_many(batch)
        except BatchRefused as exc:  # some went out: the error names the first refused one (``cause``: which)
            self.stats["published"] += len(exc.accepted)
            self.stats["failed"] += len(batch) - len(exc.accepted)
            first = batch[min(exc.failed)]
            raise PublishError(first.event_type, first.event_id, exc) from exc
        except self.transport.errors as exc:
            self.stats["failed"] += len(batch)
            raise PublishError(batch[0].event_type, batch[0].event_id, exc) from exc
        self.stats["published"] += len(batch)
        for item, count in zip(batch, copies):
            if count is not None:
                self.stats["copies"] += count
                if count == 0:
                    self.stats["unrouted"] += 1
                    log.info("event %s (%s) has no subscriber yet; nobody gets it", item.event_id, item.event_type)
        return copies

    def unreachable(self, exc: BaseException) -> bool:
        """Whether a publish failed because the broker is unreachable (not because it refused a message)."""
        cause = exc.cause if isinstance(exc, PublishError) else exc
        return isinstance(cause, getattr(self.transport, "connection_errors", self.transport.errors))

    def publish_to(self, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> str:
        """Publish one copy to ``service``'s queue only (replay); returns the queue name."""
        queue = self.conf.queue_name(service)
        try:
            self.transport.publish_to(queue, service, event_type, event_id, body, argsrepr)
        except self.transport.errors as exc:
            raise PublishError(event_type, event_id, exc) from exc
        return queue

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish a prepared event body now; :class:`PublishError` if the broker does not take it."""
        try:
            copies = self.transport.publish(event_type, event_id, body, argsrepr)
        except self.transport.errors as exc:
            self.stats["failed"] += 1
            raise PublishError(event_type, event_id, exc) from exc
        self.stats["published"] += 1
        if copies is not None:
            self.stats["copies"] += copies
            if copies == 0:
                self.stats["unrouted"] += 1
                log.info("event %s (%s) has no subscriber yet; nobody gets it", event_id, event_type)
        return copies


NOT_UTF8 = "text that cannot be encoded as UTF-8 (a lone surrogate such as \\ud800): send valid Unicode text"


def not_utf8(value: object) -> dict[str, object]:
    """The fields (nested as marshmallow's errors; a list's items by index) of ``value`` whose text
    UTF-8 cannot encode."""
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    found: dict[str, object] = {}
    for name, item in items:
        if isinstance(name, str) and not _utf8(name):  # a key of a Dict field: named escaped, never printed raw
            found[name.encode("utf-8", "backslashreplace").decode()] = [f"this key is {NOT_UTF8}"]
        elif isinstance(item, str):
            if not _utf8(item):
                found[str(name)] = [NOT_UTF8]
        elif inner := not_utf8(item):
            found[str(name)] = inner
    return found


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_lock = threading.Lock()
_apps: list[Celery] = []
_publisher: tuple[int, Publisher] | None = None


def use_app(app: Celery) -> None:
    """Send through ``app``'s broker (called by ``event_tasks.app.install``)."""
    with _lock:
        if app not in _apps:
            _apps.append(app)


def known_apps() -> tuple[Celery, ...]:
    """The Celery apps handed to :func:`use_app` (``install``), oldest first."""
    return tuple(_apps)


def the_app() -> Celery:
    """The host's Celery app: the one handed to ``install``, else ``EVENT_TASKS_CELERY_APP`` imported."""
    if not _apps:
        path = settings().celery_app
        if not path:
            raise ConfigurationError(
                "event-tasks does not know the service's Celery app: call "
                "event_tasks.app.install(app) where the app is created (e.g. proj/celery.py), "
                "or set EVENT_TASKS_CELERY_APP = 'proj.celery:app'"
            )
        app = symbol_by_name(path)
        use_app(app)
    return _apps[-1]


def default_publisher() -> Publisher:
    """The process's publisher, built on first use (one per PID: connections do not survive a fork)."""
    global _publisher
    current = _publisher
    if current is not None and current[0] == os.getpid():
        return current[1]
    with _lock:
        current = _publisher
        if current is not None and current[0] == os.getpid():
            return current[1]
    app = the_app()
    conf = settings()
    publisher = Publisher(app, conf.require_service(), conf)
    with _lock:
        _publisher = (os.getpid(), publisher)
    return publisher


def reset_default_publisher() -> None:
    """Forget the process's publisher (tests that change settings or brokers call this)."""
    global _publisher
    with _lock:
        if _publisher is not None and _publisher[0] == os.getpid():
            try:
                _publisher[1].transport.close()
            except Exception:
                log.debug("closing the publisher's connection failed", exc_info=True)
        _publisher = None


def send_events(items: Iterable[Sequence[Any]]) -> list[Event]:  # Any: (type, data[, key]), checked by send_many
    """Validate and publish several events at once: items are ``(event_type, data)`` or
    ``(event_type, data, key)``.

    Every event is validated before anything is published (one invalid payload raises
    :class:`~event_tasks.errors.EventValidationError` and nothing is sent). On Redis the batch is
    one round trip; on RabbitMQ it is published and all confirms are awaited once. Inside
    ``transaction.atomic()`` the batch goes to the outbox as one insert. Returns the events, in order.
    """
    return default_publisher().send_many(items)


def send_event(event_type: str, data: Mapping[str, object], *, key: str | None = None, id: str | None = None) -> Event:
    """Validate ``data`` against ``event_type``'s schema and publish it to every subscriber.

    Raises :class:`~event_tasks.errors.UnknownEventType` or
    :class:`~event_tasks.errors.EventValidationError` (naming the type and each bad field)
    before anything is published, and :class:`~event_tasks.errors.PublishError` when the broker
    does not accept it after bounded retries. Returns the :class:`~event_tasks.Event` sent.

    ``id``: the event's id, when the producer has a natural one (an idempotency key): a send
    retried after a ``PublishError`` that did reach the broker is then a duplicate that every
    consumer suppresses, instead of a second event. Default: a new UUID.
    """
    return default_publisher().send(event_type, data, key=key, id=id)
