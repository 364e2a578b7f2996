"""``events tail [--type PATTERN]``: print events live, from a temporary queue of its own.

The tail's queue ``events.tail.<random>`` is bound on ``events`` with the pattern, so it gets its
own copy of every matching event, like a service would; the services' queues are not touched.

* RabbitMQ: an exclusive, auto-delete queue: the broker removes it with the tail's connection,
  also when the tail is killed.
* Redis: the binding is a member of the subscription table (kombu's binding set), which has no
  expiry. The tail keeps a heartbeat key with a short lease alive while it runs and removes its
  binding and list on exit; a killed tail's binding outlives it, and is removed by the next
  ``events tail``, ``events declare``, worker start (``topology.declare``) or
  ``events topology verify --prune`` once the lease has run out. Until then its list collects
  the copies the fan-out pushes there.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from kombu import Consumer, Queue

from ..brokers.redis.items import read_item
from ..brokers.topology import (
    events_exchange,
    is_redis,
    sweep_tail_bindings,
    tail_heartbeat_key,
    tail_queue_prefix,
    unbind,
)
from ..conf import settings

if TYPE_CHECKING:
    import redis
    from celery import Celery
    from kombu import Connection
    from kombu.transport.base import StdChannel

#: what the tail yields: ``(envelope, data)``, the event's task arguments (JSON)
TailEvent = tuple[dict[str, object], object]


class Tail:
    """A temporary subscription to ``pattern``; iterate :meth:`events` for ``(envelope, data)`` pairs."""

    channel: StdChannel
    client: redis.Redis  # Redis: the channel's client

    def __init__(self, app: Celery, pattern: str = "#", lease: float = 30.0) -> None:
        self.app = app
        self.pattern = pattern
        self.lease = lease
        self.queue = f"{tail_queue_prefix()}{uuid.uuid4().hex[:12]}"
        self.stop = threading.Event()
        self.conn: Connection | None = None
        self._redis = False
        self._renewed = 0.0
        self._received: list[TailEvent] = []

    def __enter__(self) -> Tail:
        self.conn = conn = self.app.connection_for_write()
        conn.ensure_connection(max_retries=3)
        self._redis = is_redis(conn)
        self.channel = conn.channel()
        if self._redis:
            self.client = self.channel.client  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
            sweep_tail_bindings(self.client)
            self._renew()
            Queue(self.queue, events_exchange(), routing_key=self.pattern)(self.channel).declare()
        else:
            queue = Queue(
                self.queue, events_exchange(), routing_key=self.pattern, exclusive=True, auto_delete=True, durable=False
            )
            self.consumer = Consumer(
                self.channel,
                queues=[queue],
                no_ack=True,
                accept=["json"],
                callbacks=[lambda body, message: self._received.append(_args(body))],
            )
            self.consumer.consume()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            if self._redis:
                unbind(self.conn, self.queue, self.pattern)
                self.client.delete(self.queue, tail_heartbeat_key(self.queue))
        finally:
            self.conn.release()  # RabbitMQ: the exclusive queue goes with the connection
            self.conn = None

    def _renew(self) -> None:
        self.client.set(tail_heartbeat_key(self.queue), "1", px=int(self.lease * 1000))
        self._renewed = time.monotonic()

    def events(self, poll: float = 0.5) -> Iterator[TailEvent]:
        """Each matching event as ``(envelope, data)`` until :attr:`stop` is set."""
        while not self.stop.is_set():
            if self._redis:
                if time.monotonic() - self._renewed > self.lease / 3:
                    self._renew()
                item = self.client.brpop([self.queue], timeout=max(1, int(poll)))
                if item:
                    yield _redis_args(item[1])
                continue
            if self.conn is None:  # closed
                return
            try:
                self.conn.drain_events(timeout=poll)
            except TimeoutError:
                pass
            except OSError as exc:  # socket.timeout is an OSError
                if "timed out" not in str(exc):
                    raise
            while self._received:
                yield self._received.pop(0)


def _args(body: object) -> TailEvent:
    """The ``(envelope, data)`` of a task body kombu decoded (RabbitMQ), or of its JSON text."""
    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    args = body[0] if isinstance(body, list) and body else None
    if not isinstance(args, list) or len(args) != 2 or not isinstance(args[0], dict):
        raise ValueError(f"not an event's task body: {body!r:.200}")
    return args[0], args[1]


def _redis_args(raw: bytes | str) -> TailEvent:
    """An item of the tail's Redis list: kombu's message of an event's task (raises if it is not one)."""
    item = read_item(raw)
    if item is None or item.envelope is None or item.args is None or len(item.args) != 2:
        raise ValueError(f"not an event's task message in the tail's queue: {raw[:200]!r}")
    return item.envelope, item.args[1]


def format_event(envelope: Mapping[str, object], data: object) -> str:
    return (
        f"{envelope.get('time')} {envelope.get('type')} id={envelope.get('id')} source={envelope.get('source')} "
        f"key={envelope.get('key')} data={json.dumps(data, sort_keys=True, ensure_ascii=False)}"
    )


def run(
    app: Celery,
    out: Callable[[str], None],
    err: Callable[[str], None],
    *,
    pattern: str = "#",
    as_json: bool = False,
    count: int | None = None,
    lease: float = 30.0,
    stop: threading.Event | None = None,
) -> int:
    """The ``events tail`` command: print events until ``count`` were seen or ``stop`` is set."""
    from .. import catalog

    if not catalog.matching(pattern):
        err(f"warning: no event type of the catalog matches {pattern!r}; nothing will arrive")
    seen = 0
    with Tail(app, pattern, lease) as tail:
        if stop is not None:
            tail.stop = stop
        err(f"listening on {tail.queue} <- {pattern} ({settings().exchange}); Ctrl-C to stop")
        for envelope, data in tail.events():
            out(
                json.dumps({"envelope": envelope, "data": data}, sort_keys=True, ensure_ascii=False)
                if as_json
                else format_event(envelope, data)
            )
            seen += 1
            if count is not None and seen >= count:
                break
    err(f"tail stopped after {seen} event(s); {tail.queue} removed")
    return seen
