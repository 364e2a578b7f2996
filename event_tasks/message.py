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
from typing import Any

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ARGSREPR_LIMIT = 1024
ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def task_id(event_id: str, service: str) -> str:
    return f"{event_id}:{service}"


_EMBED_JSON = _dumps(_EMBED)


def encode_body(envelope: dict[str, Any], data: dict[str, Any]) -> tuple[str, str]:
    """``(body, argsrepr)``: the protocol-2 body and what Flower shows as the arguments."""
    args = _dumps([envelope, data])
    body = f"[{args},{{}},{_EMBED_JSON}]"
    return body, (args if len(args) <= ARGSREPR_LIMIT else args[:ARGSREPR_LIMIT - 3] + "...")


def headers(event_type: str, event_id: str, task_id_: str, body_args_repr: str) -> dict[str, Any]:
    return {
        "lang": "py", "task": event_type, "id": task_id_, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": event_id, "parent_id": None,
        "argsrepr": body_args_repr, "kwargsrepr": "{}", "origin": ORIGIN,
        "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }


class RedisMessageTemplate:
    """The kombu-on-Redis JSON message for one event, cut where each copy differs.

    kombu stores ``{"body", "content-type", "content-encoding", "headers", "properties"}``
    in the queue's list; the per-copy values are the task id (in ``headers.id``,
    ``properties.correlation_id`` and the delivery tag) and the queue (``delivery_info``).
    """

    SERVICE = "s"
    QUEUE = "q"

    def __init__(self) -> None:
        self._marker_s = f"\u2063s{os.urandom(8).hex()}\u2063"
        self._marker_q = f"\u2063q{os.urandom(8).hex()}\u2063"

    def pieces(self, event_type: str, event_id: str, body: str, argsrepr: str) -> list[str]:
        tid = f"{event_id}:{self._marker_s}"
        message = {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers(event_type, event_id, tid, argsrepr),
            "properties": {
                "correlation_id": tid,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self._marker_q},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": tid,
            },
        }
        text = _dumps(message)
        out: list[str] = []
        pos = 0
        while True:
            i_s = text.find(self._marker_s, pos)
            i_q = text.find(self._marker_q, pos)
            if i_s < 0 and i_q < 0:
                out.append(text[pos:])
                break
            if i_q < 0 or (0 <= i_s < i_q):
                out.extend((text[pos:i_s], self.SERVICE))
                pos = i_s + len(self._marker_s)
            else:
                out.extend((text[pos:i_q], self.QUEUE))
                pos = i_q + len(self._marker_q)
        if len(out) != 9:  # 3 service slots + 1 queue slot; the markers are random per process
            raise RuntimeError("message template markers collided with event content")
        return out
