"""The RabbitMQ management HTTP API, read-only: queues and the bindings of the ``events`` exchange.

AMQP 0-9-1 cannot list bindings or unacknowledged counts; the management plugin can, and it is
what a RabbitMQ operator has (Flower's ``--broker_api`` is the same URL). Its address:
``EVENT_TASKS_RABBITMQ_MANAGEMENT_URL`` (``http://user:password@host:15672``), else the broker's
host on port 15672 with the broker's credentials. See docs/decisions/0008-topology-verify.md.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Required, TypedDict

from kombu import Connection

from ...errors import ManagementAPIUnavailable

DEFAULT_PORT = 15672


class QueueStats(TypedDict, total=False):
    """A queue as ``/api/queues`` lists it, the keys the fabric reads (the API sends many more; a
    counter can be missing, e.g. before the first statistics tick)."""

    name: Required[str]
    messages: int
    messages_ready: int
    messages_unacknowledged: int
    consumers: int


class ManagementAPI:
    """A few GETs against ``/api`` for one vhost."""

    def __init__(self, base_url: str, vhost: str, timeout: float = 3.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.user = urllib.parse.unquote(parts.username or "guest")
        self.password = urllib.parse.unquote(parts.password or "guest")
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urllib.parse.urlunsplit((parts.scheme or "http", netloc, parts.path.rstrip("/"), "", ""))
        self.vhost = vhost
        self.timeout = timeout

    @classmethod
    def for_broker(cls, broker_url: str, management_url: str | None = None, timeout: float = 3.0) -> ManagementAPI:
        conn = Connection(broker_url)
        vhost = conn.virtual_host or "/"
        if management_url:
            return cls(management_url, vhost, timeout)
        user = urllib.parse.quote(conn.userid or "guest", safe="")
        password = urllib.parse.quote(conn.password or "guest", safe="")
        return cls(f"http://{user}:{password}@{conn.hostname or '127.0.0.1'}:{DEFAULT_PORT}", vhost, timeout)

    def get(self, path: str) -> Any:  # Any: JSON from the management API (None on a 404)
        request = urllib.request.Request(self.base + "/api/" + path)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise ManagementAPIUnavailable(self.base, f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ManagementAPIUnavailable(self.base, str(getattr(exc, "reason", exc))) from None

    def _vhost(self) -> str:
        return urllib.parse.quote(self.vhost, safe="")

    def queue(self, name: str) -> QueueStats | None:
        """The queue's counters (``messages_ready``, ``messages_unacknowledged``, ``consumers`` …), None if absent."""
        return self.get(f"queues/{self._vhost()}/{urllib.parse.quote(name, safe='')}")

    def queues(self) -> list[QueueStats]:
        return self.get(f"queues/{self._vhost()}") or []

    def bindings(self, exchange: str) -> list[tuple[str, str]]:
        """``(routing key, queue)`` of every queue bound to ``exchange``."""
        rows = self.get(f"exchanges/{self._vhost()}/{urllib.parse.quote(exchange, safe='')}/bindings/source") or []
        return sorted((r["routing_key"], r["destination"]) for r in rows if r.get("destination_type") == "queue")
