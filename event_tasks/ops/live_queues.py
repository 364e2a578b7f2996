"""A RabbitMQ queue's live type and arguments, by AMQP alone, and the refusal to declare over them.

A queue's type (classic, quorum) and its arguments (a quorum queue's delivery limit and
dead-letter target) cannot change once it exists: declaring it with others fails with a 406 and
closes the channel. ``events topology verify`` reports such a queue (``topology_check``); a
starting worker and ``events declare`` stop with one line that names the queue, both types and
``events queues migrate`` (``migrate_queues``), which moves the queue to the declared type.

AMQP cannot read a queue's arguments, and the management API may not answer; but RabbitMQ's
refusal names one argument and its live value ("inequivalent arg 'x-queue-type' for queue ...:
received the value 'quorum' of type 'longstr' but current is none"). Declaring again with that
value put in names the next one, until the declaration is the queue's own. Each try runs on a
throwaway channel, and only after a passive declaration found the queue: nothing here creates a
queue (unless another process deletes it between the two, a window of one round trip).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from amqp.exceptions import PreconditionFailed, ResourceLocked
from kombu import Connection, Queue
from kombu.exceptions import OperationalError

from ..brokers.topology import (
    broker_kind,
    is_quorum,
    parked_queue,
    passive_declare,
    service_of,
    service_queue,
)
from ..errors import QueueTypeMismatch
from ..handlers import orders_keys

if TYPE_CHECKING:
    from amqp import Connection as AMQPConnection
    from celery import Celery

log = logging.getLogger(__name__)

_FLAGS = ("durable", "auto_delete")  # queue.declare flags RabbitMQ also names in its refusal
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for queue .*: received (?P<got>.+) but current is (?P<cur>.+)$"
)
_TYPED = re.compile(r"^the value '(?P<value>.*)' of type '(?P<type>[^']+)'$")
_INTEGERS = frozenset({"signedint", "long", "short", "byte", "unsignedbyte", "unsignedshort", "unsignedint"})
NONE = "none"  # how a refusal names an argument the queue (or the declaration) does not have


@dataclasses.dataclass(frozen=True)
class LiveQueue:
    """A queue as RabbitMQ has it: messages ready, consumers, its type, and each argument (or flag)
    that differs from a declaration: ``(argument, on the broker, declared)``, shown as text."""

    name: str
    depth: int
    consumers: int
    queue_type: str  # "classic", "quorum", "stream"; "?" when a refusal could not be read
    differences: tuple[tuple[str, str, str], ...]

    @property
    def matches(self) -> bool:
        return not self.differences


def parse_refusal(text: str, like: object = None) -> tuple[str, object] | None:
    """``(argument, live value)`` named by a 406 "inequivalent arg" refusal (:data:`NONE`: the
    queue has no such argument), or None for another refusal. ``like``: the declared value, whose
    type a live value of the same type has (RabbitMQ then quotes the value alone)."""
    found = _INEQUIVALENT.search(text)
    if found is None:
        return None
    arg, current = found.group("arg"), found.group("cur").strip()
    if current == NONE:
        return arg, NONE
    typed = _TYPED.match(current)
    if typed is not None:
        value, amqp_type = typed.group("value"), typed.group("type")
        if amqp_type in _INTEGERS:
            return arg, int(value)
        if amqp_type == "bool":
            return arg, value == "true"
        return arg, float(value) if amqp_type in ("double", "float") else value
    value = current[1:-1] if len(current) >= 2 and current[0] == current[-1] == "'" else current
    if isinstance(like, bool):
        return arg, value == "true"
    if isinstance(like, int) and re.fullmatch(r"-?\d+", value):
        return arg, int(value)
    return arg, float(value) if isinstance(like, float) else value


def shown(value: object) -> str:
    """A queue argument's value as a person reads it (``none``: no such argument)."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) and value != NONE else str(value)


def declared_arguments(queue: Queue) -> dict[str, object]:
    """The arguments ``queue`` is declared with, its type explicit (no ``x-queue-type`` is classic)."""
    return {"x-queue-type": "classic", **(queue.queue_arguments or {})}


def live_queue(connection: Connection, queue: Queue, tries: int = 16) -> LiveQueue | None:
    """How the queue named ``queue.name`` is on RabbitMQ against ``queue``'s declaration (its
    durable and auto_delete flags, its arguments), or None if it does not exist."""
    depth, consumers = passive_declare(connection, queue.name)
    if depth is None or consumers is None:
        return None
    wanted: dict[str, object] = {"durable": bool(queue.durable), "auto_delete": bool(queue.auto_delete)}
    wanted.update(declared_arguments(queue))
    trying = dict(wanted)
    differences: list[tuple[str, str, str]] = []
    unreadable = False
    for _ in range(tries):
        refusal = _declare_refused(connection, queue.name, trying)
        if refusal is None:
            break
        found = _INEQUIVALENT.search(refusal)
        parsed = parse_refusal(refusal, like=trying.get(found.group("arg")) if found else None)
        if parsed is None:
            differences.append(("?", refusal, ""))
            unreadable = True
            break
        arg, value = parsed
        differences.append((arg, shown(value), shown(wanted.get(arg, NONE))))
        if value == NONE:
            trying.pop(arg, None)
        else:
            trying[arg] = value
    queue_type = "?" if unreadable else str(trying.get("x-queue-type", "classic"))
    return LiveQueue(queue.name, depth, consumers, queue_type, tuple(differences))


def _declare_refused(connection: Connection, name: str, declaration: dict[str, object]) -> str | None:
    """Declare ``name`` actively on a channel of its own: None if RabbitMQ accepts the declaration
    (the queue is already so: nothing changes), else the text of its refusal."""
    amqp_connection: AMQPConnection = connection.connection  # kombu's stubs: Any; py-amqp's on RabbitMQ
    channel = amqp_connection.channel()
    try:
        channel.queue_declare(
            name,
            durable=bool(declaration.get("durable", True)),
            auto_delete=bool(declaration.get("auto_delete", False)),
            arguments={k: v for k, v in declaration.items() if k not in _FLAGS},
        )
    except (PreconditionFailed, ResourceLocked) as exc:
        return str(exc.reply_text or exc)
    channel.close()
    return None


def wanted_queues(service: str, queue_type: str) -> list[Queue]:
    """What ``service`` declares on RabbitMQ for ``queue_type``: its queue, and its parked queue when quorum."""
    queue = service_queue(service, (), queue_type, single_active=orders_keys(service))
    return [queue, parked_queue(service)] if is_quorum(queue) else [queue]


def mismatch(service: str, live: LiveQueue, queue: Queue) -> QueueTypeMismatch:
    """The error of a live queue that is not as ``queue`` declares it."""
    wanted = "quorum" if is_quorum(queue) else "classic"
    return QueueTypeMismatch(
        live.name, service, live.queue_type, wanted, live.differences if live.queue_type == wanted else ()
    )


def on_rabbitmq(connection: Connection) -> bool:
    """Whether ``connection`` is py-amqp's (RabbitMQ): not Redis, not ``memory://`` (unit tests)."""
    return connection.transport.driver_type == "amqp"


def refuse_mismatched(connection: Connection, queues: Iterable[Queue]) -> None:
    """:class:`~event_tasks.errors.QueueTypeMismatch` for the first of ``queues`` (service queues as
    the code declares them) that RabbitMQ has with another type or other arguments, or whose parked
    queue it has so: one line instead of the 406 with which declaring it would fail. Redis: nothing."""
    if not on_rabbitmq(connection):
        return
    for queue in queues:
        service = service_of(queue.name)
        for candidate in [queue, parked_queue(service)] if is_quorum(queue) else [queue]:
            live = live_queue(connection, candidate)
            if live is not None and not live.matches:
                raise mismatch(service, live, candidate)


def refuse_mismatched_at_start(app: Celery, queues: Iterable[Queue]) -> None:
    """A starting worker's :func:`refuse_mismatched`, before its consumer declares the queue. A
    broker that does not answer yet is left to Celery's own connection retries (with a warning)."""
    if broker_kind(app.conf.broker_url or "") != "amqp":
        return
    conn = app.connection_for_write()
    unreachable: tuple[type[BaseException], ...] = (
        *conn.connection_errors,
        *conn.channel_errors,
        OperationalError,
        OSError,
    )
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        refuse_mismatched(conn, queues)
    except unreachable as exc:
        log.warning("event-tasks: the type of the event queue was not checked before consuming it: %s", exc)
    finally:
        conn.release()
