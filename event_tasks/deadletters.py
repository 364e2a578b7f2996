"""Dead letters: where a service's unprocessable events end, with the reason.

Called from the task (after the last retry, or for an invalid event) and from the worker's
consumer (for messages that never became a task: undecodable, pickle, unknown type).
"""
from __future__ import annotations

import base64
import json
import logging
from typing import Any

from django.db import close_old_connections

from .models import DeadLetter

log = logging.getLogger(__name__)


def record(*, service: str, reason: str, detail: str, event_id: str = "", event_type: str = "",
           task_id: str = "", traceback: str = "", attempts: int = 1, raw: Any = None) -> DeadLetter:
    """Store one dead letter in this service's database and log it."""
    close_old_connections()
    letter = DeadLetter.objects.create(
        service=service, reason=reason, detail=detail[:10_000], event_id=(event_id or "")[:64],
        event_type=(event_type or "")[:255], task_id=(task_id or "")[:255],
        traceback=traceback or "", attempts=attempts, raw=raw_text(raw),
    )
    log.error("dead letter #%s in %s: %s %s (%s): %s", letter.pk, service, event_type or "?",
              event_id or "", reason, detail)
    return letter


def raw_text(raw: Any) -> str:
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


def message_raw(message: Any) -> dict[str, Any]:
    """A kombu message as JSON-ready data (body as text, or base64 when it is not text)."""
    return {"headers": _jsonable(getattr(message, "headers", None)),
            "properties": _jsonable(getattr(message, "properties", None)),
            "content_type": getattr(message, "content_type", None),
            "delivery_info": _jsonable(getattr(message, "delivery_info", None)),
            "body": raw_text(getattr(message, "body", None))}


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return repr(value)
