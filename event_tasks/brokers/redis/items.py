"""One item of a Redis list that kombu uses as a queue, decoded: :func:`read_item`.

kombu's Redis transport stores a message as JSON, ``{"body", "content-encoding", "content-type",
"headers", "properties"}``; the ``properties`` hold the ``delivery_tag``, the ``delivery_info`` and
the ``body_encoding`` (``base64``, kombu's). An event's copy (``brokers.message``) has the Celery
task body (protocol 2) ``[args, kwargs, embed]`` as its body, and ``args`` is ``[envelope, data]``.
kombu's ``unacked`` hash holds ``[message, exchange, routing_key]`` per delivery tag.

The outer JSON is decoded the way kombu decodes it to deliver it (``kombu.utils.json.loads`` of the
item as text, undecodable bytes replaced), once: :func:`read_message`. :func:`read_item` wraps it
in a :class:`QueueItem`, whose body is decoded only when asked for. The consume step
(``transport``) needs the outer message only (kombu decodes the body for the task): it calls
:func:`read_message` and :func:`delivery_tag`, as cheap as a bare ``loads``. The operator tools
(``ops.status``, ``ops.tail``, ``ops.trace``) read headers and envelopes through :func:`read_item`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cached_property

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads


@dataclass(frozen=True, eq=False)
class QueueItem:
    """A kombu message read from a queue item; the body is decoded on first use of :attr:`body`,
    :attr:`task_body`, :attr:`args` or :attr:`envelope` (each ``None`` if it is not one)."""

    #: kombu's message as kombu delivers it (its "payload"); JSON values
    message: dict[str, object]
    #: the Celery task headers (``{}`` if the message has none)
    headers: dict[str, object]
    #: kombu's properties (``{}`` if the message has none)
    properties: dict[str, object]

    @property
    def delivery_tag(self) -> str | None:
        """kombu's delivery tag; ``None``: not a message the consume step takes (see :func:`delivery_tag`)."""
        tag = self.properties.get("delivery_tag")
        return tag if isinstance(tag, str) else None

    @property
    def task_id(self) -> str | None:
        """The Celery task id (``<event id>:<service>`` for an event's copy)."""
        value = self.headers.get("id")
        return value if isinstance(value, str) else None

    @cached_property
    def body(self) -> str | None:
        """The body as text: base64-decoded when ``body_encoding`` says so, else as it is."""
        body = self.message.get("body")
        if not isinstance(body, str):
            return None
        if self.properties.get("body_encoding") != "base64":
            return body
        try:
            return base64.b64decode(body).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), or not UTF-8 text once decoded
            return None

    @cached_property
    def task_body(self) -> list[object] | None:
        """The body's JSON if it is an array (a Celery task body: ``[args, kwargs, embed]``)."""
        body = self.body
        if body is None:
            return None
        try:
            value: object = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, list) else None

    @cached_property
    def args(self) -> list[object] | None:
        """The task's positional arguments (an event's: ``[envelope, data]``)."""
        task_body = self.task_body
        args = task_body[0] if task_body else None
        return args if isinstance(args, list) else None

    @cached_property
    def envelope(self) -> dict[str, object] | None:
        """The event envelope (the first argument), if it is a JSON object."""
        args = self.args
        envelope = args[0] if args else None
        return envelope if isinstance(envelope, dict) else None


def _json(raw: bytes | str | None) -> object:
    """``raw`` decoded as kombu decodes a queue item; ``None`` if it is not JSON (never raises)."""
    if not raw:
        return None
    try:
        return loads(bytes_to_str(raw))
    except Exception:  # noqa: BLE001 - whatever kombu's decoder raises on it, it is not a message
        return None


def read_message(raw: bytes | str | None) -> dict[str, object] | None:
    """kombu's message in the queue item ``raw``, decoded as kombu decodes it to deliver it;
    ``None`` if it is no JSON object (never raises)."""
    message = _json(raw)
    return message if isinstance(message, dict) else None


def delivery_tag(message: dict[str, object]) -> str | None:
    """The message's delivery tag, if it is a string: what makes an item a message the consume step
    takes (``take.lua`` checks the same); ``None`` for anything else."""
    properties = message.get("properties")
    tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    return tag if isinstance(tag, str) else None


def deliverable(message: dict[str, object]) -> bool:
    """Whether kombu can make a message of ``message`` (its Redis channel decodes the body and reads
    the parts with no checks of its own: a body that is no text, a ``body_encoding`` other than its
    base64, undecodable base64, or headers or delivery info that are no objects raise in the worker's
    loop). A tagged item that is not deliverable is as unreadable as one without a tag."""
    properties = message.get("properties")
    if not isinstance(properties, dict):
        return False
    body, encoding = message.get("body"), properties.get("body_encoding")
    if not (body is None or isinstance(body, str)) or encoding not in (None, "base64"):
        return False
    if encoding == "base64" and body:
        try:
            base64.b64decode(body)
        except ValueError:
            return False
    texts = (message.get("content-type"), message.get("content-encoding"))
    objects = (message.get("headers"), properties.get("delivery_info"))
    return all(v is None or isinstance(v, str) for v in texts) and all(
        v is None or isinstance(v, dict) for v in objects
    )


def read_item(raw: bytes | str | None, *, unacked: bool = False) -> QueueItem | None:
    """The queue item ``raw`` decoded, or ``None`` if it is no JSON object (never raises).

    ``unacked``: ``raw`` may also be an entry of kombu's ``unacked`` hash, ``[message, exchange,
    routing_key]`` (an in-flight list holds queue items).
    """
    message = _json(raw)
    if unacked and isinstance(message, list):
        message = message[0] if message else None
    if not isinstance(message, dict):
        return None
    headers = message.get("headers")
    properties = message.get("properties")
    return QueueItem(
        message, headers if isinstance(headers, dict) else {}, properties if isinstance(properties, dict) else {}
    )
