"""``events topology verify``: the broker's queues and bindings against what the code asks for.

What the code asks for: for every service whose handlers this process sees (``handlers``), the
queue ``events.<service>`` bound on ``events`` by each of its handlers' patterns (``topology``),
exactly what ``events declare`` and a starting worker declare. What the broker has: Redis's
binding set; on RabbitMQ the management API (AMQP cannot list bindings; see
docs/decisions/0008-topology-verify.md).

Drift, each a reason to exit non-zero:

* ``missing_queue``: a service's queue does not exist (nothing was declared: its events are lost);
* ``missing_binding``: a pattern a handler asks for is not bound (those events are lost for it);
* ``stale_binding``: a binding no handler asks for (a removed handler: its events arrive as
  ``unknown_type``), or the binding of a killed ``events tail`` (Redis);
* ``orphan_queue``: a queue bound on ``events`` that no service of the code consumes (a removed
  service: events pile up there forever);
* ``no_consumer``: a service's queue has no consumer (RabbitMQ counts them; on Redis see
  ``events status``'s workers);
* ``queue_type``: RabbitMQ's queue (or a quorum queue's ``.parked`` queue) is of another type than
  ``EVENT_TASKS_QUEUE_TYPE`` declares: workers and ``events declare`` refuse to start on it until
  ``events queues migrate`` moved it (docs/migrating-queues.md);
* ``queue_arguments``: the type is right but a quorum argument (delivery limit, dead-letter target)
  differs from what the settings declare: the same remedy.

The last two need no management API (:func:`live_queue`): without it, ``verify`` still prints what
AMQP alone can tell (queues, their types and arguments) before it says it cannot verify bindings.

:func:`prune` removes stale bindings and those of orphan queues (RabbitMQ: kombu's
``queue_unbind``); missing ones are what ``events declare`` is for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

from kombu import Connection

from ..brokers.archive import is_archive
from ..brokers.topology import (
    bindings,
    is_redis,
    is_tail_queue,
    passive_declare,
    redis_bindings,
    service_of,
    tail_heartbeat_key,
    unbind,
)
from ..conf import settings
from ..handlers import consuming_services, service_handlers
from .live_queues import live_queue, mismatch, on_rabbitmq, wanted_queues

if TYPE_CHECKING:
    from celery import Celery
    from kombu.transport.redis import Channel as RedisChannel


@dataclasses.dataclass(frozen=True)
class Drift:
    kind: str
    queue: str
    routing_key: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        key = f" <- {self.routing_key}" if self.routing_key else ""
        return f"{self.kind:16} {self.queue}{key}" + (f"  ({self.detail})" if self.detail else "")


@dataclasses.dataclass
class Report:
    broker: str
    expected: dict[str, list[str]]  # queue -> patterns its handlers ask for
    bound: list[tuple[str, str]]  # (routing key, queue) on the broker
    consumers: dict[str, int | None]  # queue -> consumer count (None: the broker cannot tell)
    drift: list[Drift]
    pruned: list[Drift] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift

    def as_dict(self) -> dict[str, object]:
        return {
            "broker": self.broker,
            "ok": self.ok,
            "expected": self.expected,
            "bound": [{"queue": q, "routing_key": k} for k, q in self.bound],
            "consumers": self.consumers,
            "drift": [d.as_dict() for d in self.drift],
            "pruned": [d.as_dict() for d in self.pruned],
        }


def expected(services: Iterable[str] | None = None) -> dict[str, list[str]]:
    """``{queue: patterns}`` the handlers of ``services`` (default: every one seen here) ask for."""
    conf = settings()
    return {conf.queue_name(s): service_handlers(s).patterns for s in (services or consuming_services())}


def verify(connection: Connection, services: Iterable[str] | None = None, *, check_consumers: bool = True) -> Report:
    """Compare the broker with the code (:class:`~event_tasks.errors.ManagementAPIUnavailable` on a
    RabbitMQ without the management API)."""
    conf = settings()
    wanted = expected(services)
    every_service_queue = {conf.queue_name(s) for s in consuming_services()}
    bound = bindings(connection)
    by_queue: dict[str, set[str]] = {}
    for routing_key, queue in bound:
        by_queue.setdefault(queue, set()).add(routing_key)
    consumers, existing = _queues(connection, set(wanted) | set(by_queue))
    drift: list[Drift] = []
    for queue, patterns in sorted(wanted.items()):
        have = by_queue.get(queue, set())
        if queue not in existing:
            drift.append(Drift("missing_queue", queue, detail="run `events declare`"))
        for pattern in patterns:
            if pattern not in have:
                drift.append(Drift("missing_binding", queue, pattern, "run `events declare`"))
        for routing_key in sorted(have - set(patterns)):
            drift.append(Drift("stale_binding", queue, routing_key, "no handler asks for it"))
        if check_consumers and queue in existing and consumers.get(queue) == 0:
            drift.append(Drift("no_consumer", queue, detail="no worker consumes it"))
    if on_rabbitmq(connection):
        drift.extend(queue_drift(connection, [service_of(q) for q in sorted(wanted) if q in existing], missing=False))
    alive = _live_tails(connection, [q for q in by_queue if is_tail_queue(q)])
    for queue, keys in sorted(by_queue.items()):
        if queue in wanted:
            continue
        if is_tail_queue(queue):
            if queue not in alive:
                drift.extend(Drift("stale_binding", queue, k, "an `events tail` that is gone") for k in sorted(keys))
            continue
        if queue in every_service_queue or is_archive(queue, conf):
            continue  # a service left out by --service; the archive's stream queue (its `#` binding)
        drift.append(
            Drift(
                "orphan_queue",
                queue,
                detail="bound on " + conf.exchange + ", consumed by no service of the code: " + ", ".join(sorted(keys)),
            )
        )
    return Report(
        "redis" if is_redis(connection) else "rabbitmq",
        wanted,
        bound,
        {q: consumers.get(q) for q in sorted(wanted)},
        drift,
    )


def prune(connection: Connection, report: Report) -> list[Drift]:
    """Remove the stale bindings and the bindings of orphan queues found by :func:`verify`."""
    removed = []
    keys_of: dict[str, list[str]] = {}
    for routing_key, queue in report.bound:
        keys_of.setdefault(queue, []).append(routing_key)
    for item in report.drift:
        if item.kind == "stale_binding":
            unbind(connection, item.queue, item.routing_key)
            if is_tail_queue(item.queue) and is_redis(connection):
                with connection.channel() as channel:
                    # is_redis: a Redis channel (the stubs type every channel() as StdChannel)
                    cast("RedisChannel", channel).client.delete(item.queue)
            removed.append(item)
        elif item.kind == "orphan_queue":
            for routing_key in keys_of.get(item.queue, []):
                unbind(connection, item.queue, routing_key)
                removed.append(Drift("stale_binding", item.queue, routing_key, "of an orphan queue"))
    return removed


def _queues(connection: Connection, names: set[str]) -> tuple[dict[str, int | None], set[str]]:
    """Consumer counts and which of ``names`` exist (Redis: a queue exists while it has a binding or messages)."""
    if is_redis(connection):
        with connection.channel() as channel:
            client = cast("RedisChannel", channel).client  # is_redis: a Redis channel (stubs: StdChannel)
            bound = {q for _, q in redis_bindings(client)}
            existing = {n for n in names if n in bound or client.exists(n)}
        return dict.fromkeys(names), existing
    # The management API's counters lag (statistics every few seconds): ask the broker itself.
    consumers: dict[str, int | None] = {}
    for name in names:
        consumers[name] = passive_declare(connection, name)[1]
    return consumers, {n for n, c in consumers.items() if c is not None}


def _live_tails(connection: Connection, queues: list[str]) -> set[str]:
    if not queues:
        return set()
    if not is_redis(connection):
        return set(queues)  # exclusive queues: RabbitMQ removes them with their tail's connection
    with connection.channel() as channel:
        # is_redis: a Redis channel (the stubs type every channel() as StdChannel)
        return {q for q in queues if cast("RedisChannel", channel).client.exists(tail_heartbeat_key(q))}


def run_verify(
    app: Celery,
    out: Callable[[str], object],
    err: Callable[[str], object],
    *,
    services: list[str] | None = None,
    prune: bool = False,
    ignore_consumers: bool = False,
    json: bool = False,
    **_: object,
) -> int:
    """The ``events topology verify`` command: 0 in line with the code, 1 drift, 2 cannot verify."""
    import json as json_module

    from ..errors import ManagementAPIUnavailable

    known = consuming_services()
    unknown = sorted(set(services or ()) - set(known))
    if unknown:
        err(f"no handlers of {', '.join(unknown)} are installed here (services with handlers: {', '.join(known)})")
        return 2
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)
        try:
            report = verify(conn, services, check_consumers=not ignore_consumers)
            if prune and report.drift:
                removed = prune_report(conn, report, err)
                report = verify(conn, services, check_consumers=not ignore_consumers)
                report.pruned = removed
        except ManagementAPIUnavailable as exc:
            found = queue_drift(conn, services or known)
            if found:
                err(f"DRIFT (queues alone; bindings not verified): {len(found)} problem(s)")
                err("\n".join(f"  {item}" for item in found))
            err(str(exc))
            return 2
    if json:
        out(json_module.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        out(render(report))
    return 0 if report.ok else 1


def prune_report(conn: Connection, report: Report, err: Callable[[str], object]) -> list[Drift]:
    removed = prune(conn, report)
    for item in removed:
        err(f"pruned {item.queue} <- {item.routing_key}")
    return removed


def render(report: Report) -> str:
    lines = [f"broker: {report.broker}"]
    for queue, patterns in report.expected.items():
        consumers = report.consumers.get(queue)
        lines.append(f"{queue}  ({'consumers: ' + str(consumers) if consumers is not None else 'consumers: -'})")
        lines.extend(f"    <- {p}" for p in patterns)
    for item in report.pruned:
        lines.append(f"pruned           {item.queue} <- {item.routing_key}")
    if report.ok:
        lines.append(f"OK: {len(report.expected)} queue(s) match the code's handlers")
    else:
        lines.append(f"DRIFT: {len(report.drift)} problem(s)")
        lines.extend(f"  {item}" for item in report.drift)
    return "\n".join(lines)


def queue_drift(
    connection: Connection, services: Iterable[str], queue_type: str | None = None, *, missing: bool = True
) -> list[Drift]:
    """RabbitMQ, by AMQP alone: each service queue not of the declared type and arguments, and for
    quorum its parked queue (missing, or not quorum). ``missing``: a missing service queue too."""
    if not on_rabbitmq(connection):
        return []
    kind = queue_type or settings().queue_type
    drift: list[Drift] = []
    for service in services:
        for queue in wanted_queues(service, kind):
            live = live_queue(connection, queue)
            if live is None:
                if missing or queue.name != settings().queue_name(service):
                    drift.append(Drift("missing_queue", queue.name, detail="run `events declare`"))
                break  # a parked queue is declared with its service queue
            if live.matches:
                continue
            error = mismatch(service, live, queue)
            how = f"stop {service}'s workers, then `events queues migrate --service {service} --to {kind}`"
            if error.live != error.wanted:
                detail = f"{error.live} on the broker, {error.wanted} declared (EVENT_TASKS_QUEUE_TYPE): {how}"
                drift.append(Drift("queue_type", queue.name, detail=detail))
                break
            shown = ", ".join(f"{arg} {have} on the broker, {want} declared" for arg, have, want in error.differences)
            drift.append(Drift("queue_arguments", queue.name, detail=f"{shown}: {how}"))
    return drift
