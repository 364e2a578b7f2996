"""What the intake does with a message that is not a readable event: a dead letter, then the ack.

Nothing is acknowledged before it is recorded: if the dead letter cannot be stored (database
down), the message goes back to the queue (a Redis item the transport could not even read as a
kombu message comes back with the next sweep).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from kombu.message import Message

from ..store import deadletters

log = logging.getLogger(__name__)

FRAMING_BYTES = 4096  # the envelope and Celery's framing on top of the payload limit
CUT = "…(cut)"


def refuse(service: str, message: Message, reason: str, detail: str) -> None:
    """Store ``message`` in ``service``'s dead letters with ``reason``, then acknowledge it."""
    headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
    task_id = str(headers.get("id", "") or "")
    raw = deadletters.message_raw(message)
    if reason == "too_large":
        raw["body"] = raw["body"][:FRAMING_BYTES] + CUT
    try:
        deadletters.record(
            service=service,
            reason=reason,
            detail=detail,
            event_id=deadletters.event_id_of({}, task_id),
            event_type=str(headers.get("task", "") or ""),
            task_id=task_id,
            raw=raw,
        )
    except Exception:
        log.exception(
            "could not store dead letter (%s: %s) for message %r; it goes back to the queue", reason, detail, headers
        )
        settle(message.requeue, "put back")
        return
    settle(message.ack, "acknowledge")


def refuse_item(service: str, queue: str, raw: bytes | str) -> bool:
    """A Redis queue item that is not a kombu message at all: a dead letter ``undecodable``.

    Returns whether it was recorded (if not, the transport leaves it to come back later)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        deadletters.record(
            service=service,
            reason="undecodable",
            detail=f"an item of {queue} is not a kombu message (JSON with a delivery tag)",
            raw={"body": text[:FRAMING_BYTES] + (CUT if len(text) > FRAMING_BYTES else "")},
        )
    except Exception:
        log.exception("could not store the dead letter of an unreadable item of %s; it goes back later", queue)
        return False
    return True


def settle(action: Callable[[], None], what: str) -> None:
    """Acknowledge or requeue a message (``action``); a failure leaves it to the broker.

    The call fails when the connection is gone: the message is then unacknowledged and the broker
    hands it out again (on Redis, the in-flight sweep puts it back), so nothing is lost and the
    intake goes on."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - a lost connection: the broker redelivers the unacked message
        log.warning("could not %s a message (%r); the broker hands it out again", what, exc)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iso_time(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_OPTIONAL_TEXT = ("root_id", "parent_id", "group", "shadow", "argsrepr", "kwargsrepr", "origin", "lang")
_OPTIONAL_INT = ("retries", "group_index", "replaced_task_nesting")


def header_problem(headers: Mapping[str, object]) -> str | None:
    """What in Celery's task headers Celery's own handler would choke on (raise in the worker's loop, or
    reject without a trace: an ETA it cannot read); ``None`` when they are fine. Missing ones are fine."""
    if not isinstance(headers.get("id"), str):
        return "the task header 'id' is not a string"
    for name in _OPTIONAL_TEXT:
        if headers.get(name) is not None and not isinstance(headers.get(name), str):
            return f"the task header {name!r} is not a string"
    for name in _OPTIONAL_INT:
        value = headers.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return f"the task header {name!r} is not a whole number"
    eta, expires = headers.get("eta"), headers.get("expires")
    if eta is not None and not _iso_time(eta):
        return "the task header 'eta' is not an ISO 8601 time"
    if expires is not None and not (_iso_time(expires) or _number(expires)):
        return "the task header 'expires' is not an ISO 8601 time or a number"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, list | tuple) and len(limits) == 2 and all(v is None or _number(v) for v in limits)
    ):
        return "the task header 'timelimit' is not [soft, hard] seconds"
    if headers.get("ignore_result") not in (None, True, False):
        return "the task header 'ignore_result' is not true or false"
    if headers.get("stamps") is not None and not isinstance(headers.get("stamps"), dict):
        return "the task header 'stamps' is not an object"
    if headers.get("stamped_headers") is not None and not isinstance(headers.get("stamped_headers"), list):
        return "the task header 'stamped_headers' is not a list"
    return None
