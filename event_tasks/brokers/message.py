"""Build the Celery task message (protocol 2, JSON) that carries one event.

The task name is the event type; the arguments are ``(envelope, data)``. Each service's copy
has its own task id ``<event id>:<service>``. Everything that does not change per event
(header template, serializers) is prepared once.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Mapping
from typing import NamedTuple

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ARGSREPR_LIMIT = 1024
ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


# Counted by the worker's main process when it sends a delivery back to its queue, in the copy's
# headers (no database write there: a hung handler may hold the database's locks).
LOST_HEADER = "event_tasks_lost"  # the pool process died while running the handlers
TIMEOUTS_HEADER = "event_tasks_timeouts"  # the handlers ran past the delivery's hard time limit


class Prepared(NamedTuple):
    """An event ready to go on the wire: its type, id, task body and what Flower shows."""

    event_type: str
    event_id: str
    body: str
    argsrepr: str


def task_id(event_id: str, service: str) -> str:
    return f"{event_id}:{service}"


_EMBED_JSON = _dumps(_EMBED)


def encode_body(envelope: Mapping[str, object], data: Mapping[str, object]) -> tuple[str, str]:
    """``(body, argsrepr)``: the protocol-2 body and what Flower shows as the arguments."""
    args = _dumps([envelope, data])
    body = f"[{args},{{}},{_EMBED_JSON}]"
    return body, args_repr(args)


def args_repr(args: str) -> str:
    """What Flower shows of a task's arguments (their JSON): cut at ``ARGSREPR_LIMIT``."""
    return args if len(args) <= ARGSREPR_LIMIT else args[: ARGSREPR_LIMIT - 3] + "..."


def headers(event_type: str, event_id: str, task_id_: str, body_args_repr: str) -> dict[str, object]:
    return {
        "lang": "py",
        "task": event_type,
        "id": task_id_,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": event_id,
        "parent_id": None,
        "argsrepr": body_args_repr,
        "kwargsrepr": "{}",
        "origin": ORIGIN,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }


SERVICE_SLOT = "\x01"  # raw control characters never occur in JSON text: unambiguous slots
QUEUE_SLOT = "\x02"


class RedisMessageTemplate:
    """The kombu-on-Redis JSON message for one event, with slots where each copy differs.

    kombu stores ``{"body", "content-type", "content-encoding", "headers", "properties"}``
    in the queue's list. Per copy, the publish script fills ``SERVICE_SLOT`` (task id =
    ``<event id>:<service>``, correlation id, delivery tag) and ``QUEUE_SLOT`` (delivery info).
    The JSON is assembled from pieces prepared once per event type.
    """

    def __init__(self) -> None:
        self._static: dict[str, str] = {}

    def _headers_tail(self, event_type: str) -> str:
        tail = self._static.get(event_type)
        if tail is None:
            fixed = headers(event_type, "", "", "")
            for name in ("id", "root_id", "argsrepr"):
                del fixed[name]
            tail = _dumps(fixed)[1:-1]
            self._static[event_type] = tail
        return tail

    #: The slots of a rendered message, in order: task id, correlation id, routing key, delivery tag.
    SLOTS = SERVICE_SLOT + SERVICE_SLOT + QUEUE_SLOT + SERVICE_SLOT

    def pieces(self, event_type: str, event_id: str, body: str, argsrepr: str) -> list[str]:
        """The message cut at its :data:`SLOTS` (one more piece than slots), built that way."""
        eid = _dumps(event_id)
        tid = eid[:-1] + ":"  # "<event id>:  -- the service name, then the closing quote, follow
        return [
            f'{{"body":"{base64.b64encode(body.encode()).decode()}",'
            f'"content-encoding":"utf-8","content-type":"application/json",'
            f'"headers":{{"id":{tid}',
            f'","root_id":{eid},"argsrepr":{_dumps(argsrepr)},{self._headers_tail(event_type)}}},'
            f'"properties":{{"correlation_id":{tid}',
            '","delivery_mode":2,"delivery_info":{"exchange":"","routing_key":"',
            f'"}},"priority":0,"body_encoding":"base64","delivery_tag":{tid}',
            '"}}',
        ]

    def render(self, event_type: str, event_id: str, body: str, argsrepr: str) -> str:
        """The whole message, with the raw slot characters where each copy differs."""
        pieces = self.pieces(event_type, event_id, body, argsrepr)
        return "".join(piece + slot for piece, slot in zip(pieces, self.SLOTS)) + pieces[-1]
