"""Dead letters: where a service's unprocessable events end, with the reason (the rows).

Written by the event task (after the last retry, or for an invalid event) and by the worker's
event-queue consumer (``intake``: messages that never became a task: undecodable, pickle,
unknown type). Replaying them is an operation: ``replay.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from typing import Any, TypedDict

from django.db import close_old_connections
from django.utils import timezone

from ..errors import NotReplayable
from ..models import DeadLetter

log = logging.getLogger(__name__)


def record(
    *,
    service: str,
    reason: str,
    detail: str,
    event_id: str = "",
    event_type: str = "",
    task_id: str = "",
    traceback: str = "",
    attempts: int = 1,
    raw: object = None,
) -> DeadLetter:
    """Store one dead letter in this service's database and log it."""
    close_old_connections()
    letter = DeadLetter.objects.create(
        service=service,
        reason=reason,
        detail=detail[:10_000],
        event_id=(event_id or "")[:64],
        event_type=(event_type or "")[:255],
        task_id=(task_id or "")[:255],
        traceback=traceback or "",
        attempts=attempts,
        raw=raw_text(raw),
    )
    log.error(
        "dead letter #%s in %s: %s %s (%s): %s", letter.pk, service, event_type or "?", event_id or "", reason, detail
    )
    return letter


def event_id_of(envelope: object, task_id: str) -> str:
    """The event id: from the envelope, else from the task id ``<event id>:<service>``."""
    event_id = envelope.get("id") if isinstance(envelope, dict) else None
    return str(event_id or (task_id.rsplit(":", 1)[0] if ":" in task_id else task_id))


def raw_text(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(bytes(raw)).decode()
    if isinstance(raw, str):
        return raw
    return json.dumps(raw, default=repr, ensure_ascii=False)


class MessageRaw(TypedDict):
    """A kombu message as the ``raw`` of a dead letter (see :func:`message_raw`)."""

    headers: object
    properties: object
    content_type: object
    delivery_info: object
    body: str


def message_raw(message: object) -> MessageRaw:
    """A kombu message as JSON-ready data (body as text, or base64 when it is not text)."""
    return {
        "headers": _jsonable(getattr(message, "headers", None)),
        "properties": _jsonable(getattr(message, "properties", None)),
        "content_type": getattr(message, "content_type", None),
        "delivery_info": _jsonable(getattr(message, "delivery_info", None)),
        "body": raw_text(getattr(message, "body", None)),
    }


def _jsonable(value: object) -> object:
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return repr(value)


# -- acting on dead letters (manage.py events deadletters, the admin) ---------------------------


def select(
    *,
    ids: list[int] | None = None,
    service: str | None = None,
    event_type: str | None = None,
    reason: str | None = None,
    older_than: float | None = None,
    newer_than: float | None = None,
) -> list[DeadLetter]:
    """Dead letters matching every given filter (ages in seconds), oldest first."""
    qs = DeadLetter.objects.order_by("id")
    if ids:
        qs = qs.filter(pk__in=ids)
    if service:
        qs = qs.filter(service=service)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if reason:
        qs = qs.filter(reason=reason)
    now = timezone.now()
    if older_than is not None:
        qs = qs.filter(created_at__lte=now - dt.timedelta(seconds=older_than))
    if newer_than is not None:
        qs = qs.filter(created_at__gte=now - dt.timedelta(seconds=newer_than))
    return list(qs)


def as_dict(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.pk,
        "service": letter.service,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "task_id": letter.task_id,
        "reason": letter.reason,
        "detail": letter.detail,
        "attempts": letter.attempts,
        "created_at": letter.created_at.isoformat(),
        "replays": letter.replays,
        "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
        "traceback": letter.traceback,
        "raw": letter.raw,
    }


def replayable_args(letter: DeadLetter) -> tuple[dict[str, Any], Any]:  # Any: JSON stored with the dead letter
    """The (envelope, data) to send again; :class:`NotReplayable` if the message was never readable."""
    try:
        raw = json.loads(letter.raw)
        if "args" in raw:
            args = raw["args"]
        else:
            args = json.loads(raw["body"])[0]
        envelope, data = args
        if not (isinstance(envelope, dict) and envelope.get("id") and envelope.get("type")):
            raise ValueError("no envelope")
    except (ValueError, TypeError, KeyError, IndexError):
        raise NotReplayable(letter.pk, letter.reason) from None
    return envelope, data


def discard(letters: list[DeadLetter]) -> int:
    deleted, _ = DeadLetter.objects.filter(pk__in=[letter.pk for letter in letters]).delete()
    return deleted
