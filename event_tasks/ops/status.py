"""``events status``: what is piling up where, per service, as plain data.

:func:`collect` returns JSON-ready data (the ``status`` command prints it; metrics exporters
read it). Per service:

* broker: ``depth`` (waiting copies), ``oldest_age`` (seconds since the oldest waiting event was
  sent; Redis only, RabbitMQ cannot peek without redelivering), ``unacked`` (taken by a worker,
  not acknowledged yet: Redis's ``unacked`` hash and in-flight list, RabbitMQ's counter from the
  management API), ``consumers`` (RabbitMQ);
* workers (Celery remote control, short timeout): the workers consuming the service's events,
  with the deliveries they run (``active``) and hold (``held``);
* database (the service's own, see ``servicedbs``): dead letters by reason (``unsigned``,
  ``bad_signature``, ``not_owner`` among them), deliveries a worker in signing mode ``warn`` ran
  although ``enforce`` would refuse them (``signature_warnings`` by reason), outbox backlog
  (``pending``) and the age of its oldest pending row; ``None`` where this process cannot read it.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Min, Sum

from ..brokers.rabbitmq.api import ManagementAPI
from ..brokers.redis.items import read_item
from ..brokers.redis.transport import inflight_key
from ..brokers.topology import BINDING_SEP, is_redis, passive_declare
from ..conf import settings
from ..consume.worker import CONTROL_COMMAND
from ..envelope import parse_time
from ..errors import ManagementAPIUnavailable
from ..handlers import consuming_services
from ..models import DeadLetter, OutboxEvent, SignatureWarning
from ..send.publisher import the_app
from ..store.databases import known_services, service_databases

if TYPE_CHECKING:
    import redis
    from celery import Celery
    from kombu import Connection

REDIS_PRIORITIES = (3, 6, 9)  # kombu's priority steps other than 0: lists "<queue>␆␖<n>"


def collect(
    app: Celery | None = None, *, services: list[str] | None = None, workers: bool = True, timeout: float | None = None
) -> dict[str, Any]:  # Any: a JSON-shaped report (figures of several types)
    """The status of every service (or ``services``): broker, workers and database figures."""
    app = app or the_app()
    conf = settings()
    timeout = conf.inspect_timeout if timeout is None else timeout
    names = services or known_services()
    databases = service_databases()
    consuming = set(consuming_services())
    notes: list[str] = []
    seen_workers: dict[str, Any] = {}  # Any: the workers' replies, JSON (see inspect_workers)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(inspect_workers, app, timeout) if workers else None
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2)
            broker = "redis" if is_redis(conn) else "rabbitmq"
            queues = {s: conf.queue_name(s) for s in names}
            figures = _broker_figures(conn, list(queues.values()), notes)
        if pending is not None:
            seen_workers = pending.result()
    rows = []
    for service in names:
        queue = queues[service]
        # Any: one row of the JSON-shaped report
        row: dict[str, Any] = {
            "service": service,
            "queue": queue,
            "consumes": service in consuming,
            **figures.get(queue, {}),
        }
        mine = {name: w for name, w in seen_workers.items() if w.get("service") == service}
        row["workers"] = sorted(mine)
        row["active"] = sum(w.get("active", 0) for w in mine.values()) if workers else None
        row["held"] = sum(w.get("held", 0) for w in mine.values()) if workers else None
        alias = databases.get(service)
        row["database"] = alias
        row.update(database_figures(alias) if alias else {"dead_letters": None, "outbox": None})
        rows.append(row)
    return {
        "time": _now().isoformat(),
        "broker": broker,
        "services": rows,
        "workers": {name: seen_workers[name] for name in sorted(seen_workers)} if workers else None,
        "notes": notes,
    }


def inspect_workers(app: Celery, timeout: float) -> dict[str, Any]:  # Any: the workers' replies, JSON
    """``{worker: {"service", "queue", "active", "held"}}`` from every worker that answers.

    Workers that consume an event queue answer the fabric's control command (``worker``); any
    other worker answers Celery's ping and is listed with ``service: None``.
    """
    found: dict[str, Any] = {}  # Any: as the workers reply (JSON)
    with app.connection_for_write() as conn:
        replies = app.control.broadcast(CONTROL_COMMAND, reply=True, timeout=timeout, connection=conn) or []
        pings = app.control.broadcast("ping", reply=True, timeout=timeout, connection=conn) or []
    for reply in replies:
        for name, value in reply.items():
            if isinstance(value, dict) and "service" in value:
                found[name] = value
    for reply in pings:
        for name in reply:
            found.setdefault(name, {"service": None, "queue": None, "active": 0, "held": 0})
    return found


def database_figures(alias: str) -> dict[str, Any]:  # Any: JSON-shaped figures (counts, ages, None)
    """Dead letters by reason and the outbox backlog in one service's database."""
    reasons = dict(DeadLetter.objects.using(alias).values_list("reason").annotate(n=Count("id")).order_by())
    backlog = (
        OutboxEvent.objects.using(alias).filter(sent_at__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    )
    oldest = backlog["oldest"]
    warned = SignatureWarning.objects.using(alias).values_list("reason").annotate(n=Sum("count")).order_by()
    return {
        "dead_letters": {"total": sum(reasons.values()), "by_reason": dict(sorted(reasons.items()))},
        "signature_warnings": {reason: int(n or 0) for reason, n in sorted(warned)},  # warn mode: run, not refused
        "outbox": {
            "pending": backlog["n"],
            "oldest_age": round((_now() - oldest).total_seconds(), 3) if oldest else None,
        },
    }


# Any: JSON-shaped figures per queue (counts, ages, flags; None where the broker cannot tell)
def _broker_figures(conn: Connection, queues: list[str], notes: list[str]) -> dict[str, dict[str, Any]]:
    if is_redis(conn):
        return _redis_figures(conn, queues)
    unacked: dict[str, int] | None = None
    try:  # only the management API knows unacked counts; its counters lag a few seconds
        api = ManagementAPI.for_broker(
            conn.as_uri(include_password=True), settings().rabbitmq_management_url, timeout=2.0
        )
        unacked = {q["name"]: q.get("messages_unacknowledged", 0) for q in api.queues()}
    except ManagementAPIUnavailable as exc:
        notes.append(f"unacked counts need the RabbitMQ management API: {exc.cause}")
    figures = {}
    for q in queues:
        depth, consumers = passive_declare(conn, q)
        figures[q] = {
            "exists": depth is not None,
            "depth": depth or 0,
            "consumers": consumers or 0,
            "unacked": unacked.get(q, 0) if unacked is not None else None,
            "oldest_age": None,
        }
    return figures


# Any: as _broker_figures
def _redis_figures(conn: Connection, queues: list[str]) -> dict[str, dict[str, Any]]:
    figures = {}
    with conn.channel() as channel:
        client: redis.Redis = channel.client  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
        members = client.smembers(f"_kombu.binding.{settings().exchange}")
        bound = {(m.decode() if isinstance(m, bytes) else m).split(BINDING_SEP)[-1] for m in members}
        for q in queues:
            pipe = client.pipeline(transaction=False)
            pipe.llen(q)
            for p in REDIS_PRIORITIES:
                pipe.llen(f"{q}{BINDING_SEP}{p}")
            pipe.hlen(f"unacked:{q}")
            pipe.llen(inflight_key(q))
            pipe.lindex(q, -1)
            *depths, unacked, inflight, oldest = pipe.execute()
            figures[q] = {
                "exists": q in bound or sum(depths) > 0,
                "depth": sum(depths),
                "unacked": unacked + inflight,
                "consumers": None,
                "oldest_age": _age_of(oldest),
            }
    return figures


def _age_of(raw: bytes | None) -> float | None:
    """Seconds since the event in a kombu-on-Redis message was sent (its envelope ``time``)."""
    item = read_item(raw)
    sent = item.envelope.get("time") if item is not None and item.envelope is not None else None
    if not isinstance(sent, str):
        return None
    try:
        return round(max(0.0, time.time() - parse_time(sent).timestamp()), 3)
    except ValueError:  # not an ISO 8601 time with a timezone
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def render(data: dict[str, Any]) -> str:  # Any: collect's JSON-shaped report
    """The status as a table (one line per service), then workers and notes."""

    def num(value: object) -> str:
        return "-" if value is None else (f"{value:.1f}s" if isinstance(value, float) else str(value))

    lines = [
        f"{data['time']}  broker: {data['broker']}",
        f"{'service':20} {'queue':28} {'depth':>6} {'oldest':>8} {'unacked':>7} {'active':>6} {'held':>5} "
        f"{'workers':>7} {'dead':>5} {'outbox':>6} {'outbox age':>10}  dead letters by reason",
    ]
    for row in data["services"]:
        dead = row.get("dead_letters")
        outbox = row.get("outbox")
        queue = row["queue"] if row.get("exists") or row.get("consumes") else "(no queue)"
        lines.append(
            f"{row['service']:20} {queue:28} {num(row.get('depth') if row.get('exists') else None):>6} "
            f"{num(row.get('oldest_age')):>8} {num(row.get('unacked') if row.get('exists') else None):>7} "
            f"{num(row.get('active')):>6} "
            f"{num(row.get('held')):>5} {len(row['workers']) if data.get('workers') is not None else '-':>7} "
            f"{num(dead['total'] if dead else None):>5} {num(outbox['pending'] if outbox else None):>6} "
            f"{num(outbox['oldest_age'] if outbox else None):>10}  "
            + (
                ", ".join(f"{k}={v}" for k, v in dead["by_reason"].items())
                if dead
                else ("" if row.get("database") else "(database not reachable here)")
            )
        )
    if data.get("workers"):
        lines.append("workers:")
        for name, w in data["workers"].items():
            lines.append(
                f"  {name:40} {w.get('service') or '(no event queue)':20} active={w.get('active', 0)} "
                f"held={w.get('held', 0)}"
            )
    elif data.get("workers") is not None:
        lines.append("workers: none answered")
    for row in data["services"]:
        if row.get("signature_warnings"):
            warned = ", ".join(f"{k}={v}" for k, v in row["signature_warnings"].items())
            lines.append(f"signature warnings in {row['service']} (run, but enforce would refuse them): {warned}")
    lines.extend(f"note: {n}" for n in data.get("notes", []))
    return "\n".join(lines)
