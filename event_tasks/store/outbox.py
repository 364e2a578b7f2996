"""The transactional outbox rows: events sent inside a transaction leave only if it commits.

``send_event`` inside ``transaction.atomic()`` calls :func:`enqueue`: the event (its complete
task body, original id) is written to :class:`~event_tasks.models.OutboxEvent` in the same
transaction (one prepared INSERT), on the database of the fabric's rows (:func:`database`:
``EVENT_TASKS_DATABASE``, else the router's choice for the outbox), and an on-commit hook of that
database publishes it at once; the published rows are marked sent in batches, off the sender's
path (``sent.py``). If the broker is down at that moment, the row stays pending and the relay
(``relay.py``, ``python manage.py events relay``) publishes it later.

Who publishes a row is decided by a **claim** (``claimed_by`` + a lease ``claimed_until``;
docs/decisions/0009-outbox-claims.md): a row is inserted already claimed by its sender's
on-commit publish, and a relay takes only rows whose claim is free or expired, with
``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it (PostgreSQL, MySQL 8, MariaDB
10.6) and a conditional ``UPDATE`` elsewhere (SQLite). A row can still be published twice (a
claim that expired while its holder was still publishing, a process that died between
publishing and marking): consumers' duplicate suppression makes that harmless.

A row that fails on its own (refused by the broker, or unreadable) is deferred with backoff
(``attempts``, ``next_attempt_at``, ``last_error``) so it never blocks the rows behind it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from django.db import connections, router, transaction
from django.db.models import F, Field, Q, QuerySet
from django.utils import timezone

from ..brokers.message import Prepared
from ..conf import Settings, settings
from ..envelope import Event
from ..errors import BatchRefused
from ..models import OutboxEvent
from . import sent

log = logging.getLogger(__name__)
HOST = f"{socket.gethostname()}:{os.getpid()}"


class Publishes(Protocol):
    conf: Settings

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None: ...

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]: ...


def database() -> str:
    """The database alias of the outbox rows: ``EVENT_TASKS_DATABASE``, else the router's choice."""
    return settings().database or router.db_for_write(OutboxEvent)


def rows(using: str) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.using(using)


def commit_lease(conf: Settings) -> dt.timedelta:
    """How long the sender's on-commit publish holds a new row: the relay leaves it alone meanwhile."""
    return dt.timedelta(seconds=conf.outbox_grace + conf.publish_timeout * (conf.publish_retries + 1))


def new_token(kind: str) -> str:
    return f"{kind}:{HOST}:{uuid.uuid4().hex[:8]}"


def enqueue(publisher: Publishes, event: Event, body: str, argsrepr: str, using: str) -> None:
    enqueue_many(publisher, [(event, Prepared(event.type, event.id, body, argsrepr))], using)


def enqueue_many(publisher: Publishes, pairs: list[tuple[Event, Prepared]], using: str) -> None:
    """Insert the rows (one insert) claimed by this transaction's on-commit publish, which runs after commit."""
    token = new_token("commit")
    written = time.monotonic()
    until = timezone.now() + commit_lease(publisher.conf)
    if len(pairs) == 1:  # one event per transaction, the usual case: one prepared INSERT, no model instance
        event, prepared = pairs[0]
        insert_row(using, event, prepared, token, until)
    else:
        rows(using).bulk_create(
            [
                OutboxEvent(
                    event_id=event.id,
                    event_type=event.type,
                    key=event.key,
                    body=prepared.body,
                    argsrepr=prepared.argsrepr,
                    claimed_by=token,
                    claimed_until=until,
                )
                for event, prepared in pairs
            ]
        )
    batch = [prepared for _, prepared in pairs]
    transaction.on_commit(lambda: publish_committed(publisher, batch, token, using, written), using=using, robust=True)


def insert_row(using: str, event: Event, prepared: Prepared, token: str, until: dt.datetime) -> None:
    """``OutboxEvent.objects.create(...)`` as one prepared INSERT (no RETURNING, no model instance, the
    SQL compiled once per database vendor): the statement every event sent in a transaction runs."""
    connection = connections[using]
    sql = _INSERT_SQL.get(connection.vendor)
    if sql is None:
        opts = OutboxEvent._meta
        names: list[str] = []
        for name in _INSERT_FIELDS:
            field = opts.get_field(name)
            assert isinstance(field, Field) and field.column is not None  # plain columns of OutboxEvent
            names.append(connection.ops.quote_name(field.column))
        sql = (
            f"INSERT INTO {connection.ops.quote_name(opts.db_table)} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))})"
        )
        _INSERT_SQL[connection.vendor] = sql
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                event.id,
                event.type,
                event.key,
                prepared.body,
                prepared.argsrepr,
                adapt(timezone.now()),
                0,
                "",
                token,
                adapt(until),
            ],
        )


# sent_at and next_attempt_at are left out: NULL
_INSERT_FIELDS = (
    "event_id",
    "event_type",
    "key",
    "body",
    "argsrepr",
    "created_at",
    "attempts",
    "last_error",
    "claimed_by",
    "claimed_until",
)
_INSERT_SQL: dict[str, str] = {}


def publish_committed(publisher: Publishes, batch: list[Prepared], token: str, using: str, written: float) -> bool:
    """The on-commit publish: publish, then hand the ids to ``sent.marks()`` (marked sent in batches).

    The claim written with the rows is still ours when this runs within ``EVENT_TASKS_OUTBOX_GRACE``
    of the insert (``written``, a ``time.monotonic()``): its lease is the grace plus the bounded
    publish time, and a relay takes only rows whose lease ran out. Later (a transaction that
    stayed open long) the claim is renewed first with one conditional UPDATE, and if it was lost
    meanwhile (a relay took the rows) only the rows still ours are published.
    """
    if time.monotonic() - written >= publisher.conf.outbox_grace / 2:
        ids = [p.event_id for p in batch]
        mine = rows(using).filter(event_id__in=ids, claimed_by=token, sent_at__isnull=True)
        renewed = mine.update(claimed_until=timezone.now() + commit_lease(publisher.conf))
        if renewed != len(batch):
            still = set(mine.values_list("event_id", flat=True))
            batch = [p for p in batch if p.event_id in still]
            if not batch:
                return True
    try:
        if len(batch) == 1:
            publisher.publish(*batch[0])  # the one-event fast path (Redis: no pipeline, no pool checkout)
        else:
            publisher.publish_many(batch)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the relay publishes the rows later
        refused = getattr(exc, "cause", None)
        if isinstance(refused, BatchRefused):  # some went out: those are sent
            mark_sent(using, Q(event_id__in=[batch[i].event_id for i in refused.accepted]))
        release(using, Q(claimed_by=token, event_id__in=[p.event_id for p in batch]), exc)
        log.warning(
            "outbox: %d event(s) not published after commit (%s); the relay will retry",
            len(batch),
            getattr(exc, "cause", exc),
        )
        return False
    sent.marks(mark_sent_ids).add(using, [p.event_id for p in batch])  # published: sent, whoever holds it now
    return True


def write_unclaimed(pairs: list[tuple[Event, Prepared]], using: str, error: BaseException) -> None:
    """Rows for events whose direct publish failed after another database's commit: the relay sends them."""
    rows(using).bulk_create(
        [
            OutboxEvent(
                event_id=event.id,
                event_type=event.type,
                key=event.key,
                body=prepared.body,
                argsrepr=prepared.argsrepr,
                attempts=1,
                last_error=_error_text(error),
            )
            for event, prepared in pairs
        ],
        ignore_conflicts=True,
    )


# -- claims (the relay) ------------------------------------------------------------------------
def due(now: dt.datetime, grace: float) -> Q:
    """Unsent rows nobody holds (or whose claim expired), not waiting for a backoff, older than ``grace``."""
    return (
        Q(sent_at__isnull=True)
        & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & Q(created_at__lte=now - dt.timedelta(seconds=grace))
    )


def claim(using: str, token: str, *, batch: int, lease: float, grace: float) -> list[OutboxEvent]:
    """Take up to ``batch`` due rows for ``token`` (in id order); two relays never get the same row
    while a lease lasts.

    With ``SKIP LOCKED`` (PostgreSQL, MySQL 8, MariaDB 10.6): the due rows are locked and leased in
    one short transaction; rows another relay is claiming at that moment are skipped, not waited
    for. Elsewhere (SQLite): the lease is one conditional UPDATE that sets the claim only where the
    row is still due, so a row another relay took in between is not ours.
    """
    now = timezone.now()
    until = now + dt.timedelta(seconds=lease)
    condition = due(now, grace)
    if connections[using].features.has_select_for_update_skip_locked:
        with transaction.atomic(using=using):
            ids = list(
                rows(using)
                .select_for_update(skip_locked=True)
                .filter(condition)
                .order_by("id")
                .values_list("pk", flat=True)[:batch]
            )
            if ids:
                rows(using).filter(pk__in=ids).update(claimed_by=token, claimed_until=until)
    else:
        for _ in range(5):  # another relay took these very rows between our SELECT and UPDATE: look again
            ids = list(rows(using).filter(condition).order_by("id").values_list("pk", flat=True)[:batch])
            if not ids or rows(using).filter(condition, pk__in=ids).update(claimed_by=token, claimed_until=until):
                break
    if not ids:
        return []
    return list(rows(using).filter(pk__in=ids, claimed_by=token).order_by("id"))


def mark_sent_ids(using: str, ids: list[str]) -> int:
    """Mark published rows sent by event id, ``MARK_CHUNK`` ids per UPDATE (``sent.marks()`` calls this)."""
    return sum(mark_sent(using, Q(event_id__in=ids[i : i + MARK_CHUNK])) for i in range(0, len(ids), MARK_CHUNK))


MARK_CHUNK = 500


def mark_sent(using: str, which: Q) -> int:
    """Published: ``sent_at`` set; ``claimed_by`` stays, to show who sent it (the admin's column)."""
    return (
        rows(using)
        .filter(which, sent_at__isnull=True)
        .update(sent_at=timezone.now(), attempts=F("attempts") + 1, claimed_until=None, next_attempt_at=None)
    )


def release(using: str, which: Q, error: BaseException) -> int:
    """Give rows back after a failure that is not theirs (the broker is down): due again at once."""
    return (
        rows(using)
        .filter(which, sent_at__isnull=True)
        .update(attempts=F("attempts") + 1, last_error=_error_text(error), claimed_by="", claimed_until=None)
    )


def defer(using: str, row: OutboxEvent, error: BaseException, conf: Settings) -> dt.datetime:
    """A row that failed on its own: retried after a backoff that doubles per attempt (capped)."""
    attempts = row.attempts + 1
    wait = min(conf.outbox_backoff_max, conf.outbox_backoff * 2 ** min(attempts - 1, 30))
    at = timezone.now() + dt.timedelta(seconds=wait)
    rows(using).filter(pk=row.pk, sent_at__isnull=True).update(
        attempts=attempts, last_error=_error_text(error), next_attempt_at=at, claimed_by="", claimed_until=None
    )
    return at


def failing(using: str) -> list[OutboxEvent]:
    """Unsent rows that failed on their own and wait for their next attempt (oldest first)."""
    return list(rows(using).filter(sent_at__isnull=True, next_attempt_at__isnull=False).order_by("id"))


def check_row(row: OutboxEvent) -> None:
    """Refuse a row that is not the event it claims to be (edited by hand, cut by a column limit):
    every consumer would dead-letter it. Raises :class:`ValueError` saying what is wrong."""
    try:
        body = json.loads(row.body)
    except ValueError as exc:
        raise ValueError(f"outbox row #{row.pk}: body is not JSON ({exc})") from None
    envelope = body[0][0] if (isinstance(body, list) and body and isinstance(body[0], list) and body[0]) else None
    if not isinstance(envelope, dict) or envelope.get("id") != row.event_id or envelope.get("type") != row.event_type:
        raise ValueError(f"outbox row #{row.pk}: body is not the task body of event {row.event_id} ({row.event_type})")


def _error_text(error: BaseException) -> str:
    return f"{timezone.now():%Y-%m-%d %H:%M:%S} {type(error).__name__}: {error}"[:2000]
