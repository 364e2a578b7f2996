"""``events trace EVENT_ID``: where one event went, and why a service did not get it.

One event leaves traces in several places, each service's in its own database:

* the producer's outbox row (sent inside a transaction): type, envelope (source, time), when it
  was published, attempts, last error;
* the broker: which queues are bound to the type *now* (a service whose handlers want the type
  but whose queue has no binding does not receive it), and on Redis whether a copy is still
  waiting in a queue or held by a worker (RabbitMQ cannot show a queued message without
  redelivering it);
* each consuming service's database: duplicate marks per handler (when it was applied, how many
  duplicate copies were suppressed), the task result row (django-celery-results, one per
  (event, service)), redelivered attempts that never finished, dead letters with the reason and replays.

The envelope (source, time) comes from whatever holds it: the outbox row, a result row (a
delivery that was retried or redelivered; one that succeeds at once stores none), a dead letter or
a queued copy. Databases are the ones this process can read (``servicedbs``): run it in a tooling process
configured with the services' databases, or as one service (``EVENT_TASKS_SERVICE``) to see that
service's side. :func:`trace` returns plain data; :func:`render` prints it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError

from .. import catalog
from ..brokers.message import task_id
from ..brokers.redis.items import QueueItem, read_item
from ..brokers.redis.transport import inflight_key
from ..brokers.topology import bindings, is_redis
from ..conf import settings
from ..errors import EventTasksError, ManagementAPIUnavailable, NotReplayable
from ..handlers import consuming_services, service_handlers
from ..models import DeadLetter, OutboxEvent, ProcessedEvent, Redelivery
from ..send.publisher import the_app
from ..store.databases import service_databases
from ..store.deadletters import replayable_args
from ..topics import topic_matches

if TYPE_CHECKING:
    import redis
    from celery import Celery

SCAN_LIMIT = 10_000  # Redis: queue entries searched for a waiting copy


# Any: a JSON-shaped report (rows of records of several kinds, None where nothing is known)
def trace(event_id: str, *, services: list[str] | None = None, app: Celery | None = None) -> dict[str, Any]:
    """Everything this process can find about ``event_id`` (see the module docstring)."""
    conf = settings()
    databases = service_databases()
    # Any: each service's records, JSON-shaped (see _read)
    found: dict[str, dict[str, Any]] = {s: _database_records(alias, s, event_id) for s, alias in databases.items()}
    outbox = [dict(r["outbox"], service=s) for s, r in found.items() if r.get("outbox")]
    broker = _broker(event_id, app or the_app())
    envelope = _envelope(outbox, found) or broker["envelope"]
    for row in outbox:
        row.pop("body")
    event_type = envelope.get("type") or next((t for r in found.values() for t in r.get("types", [])), None)
    consumers = {s for s in consuming_services() if event_type and service_handlers(s).for_type(event_type)}
    with_copies = {q[len(conf.queue_prefix) :] for q in broker["copies"] if q.startswith(conf.queue_prefix)}
    names = sorted(
        set(services) if services else consumers | with_copies | {s for s, r in found.items() if r.get("records")}
    )
    rows = []
    for service in names:
        records = found.get(service)
        wanted = (
            sorted(h.pattern for h in service_handlers(service).for_type(event_type))
            if event_type and service in consuming_services()
            else []
        )
        queue = conf.queue_name(service)
        copy = broker["copies"].get(queue)
        table = broker["table"]
        bound = (
            None
            if table is None or not event_type
            else sorted(k for k, q in table if q == queue and topic_matches(k, event_type))
        )
        row = {
            "service": service,
            "subscribed_in_code": wanted,
            "bound_now": bound,
            "queued": copy,
            "database": databases.get(service),
            **(records or {}),
        }
        for private in ("outbox", "types", "records", "envelope"):
            row.pop(private, None)
        row["verdict"] = _verdict(row, records, wanted, bound, copy)
        rows.append(row)
    return {
        "event_id": event_id,
        "type": event_type,
        "owner": _owner(event_type),
        "source": envelope.get("source"),
        "time": envelope.get("time"),
        "outbox": outbox,
        "broker": broker["kind"],
        "notes": broker["notes"],
        "services": rows,
    }


def _owner(event_type: str | None) -> str | None:
    try:
        return catalog.get(event_type).owner if event_type else None
    except EventTasksError:
        return None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _database_records(alias: str, service: str, event_id: str) -> dict[str, Any]:  # Any: as _read
    try:
        return _read(alias, service, event_id)
    except DatabaseError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# Any: one service's records, JSON-shaped (outbox row, marks, result, redeliveries, dead letters)
def _read(alias: str, service: str, event_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"types": []}  # Any: as above
    row = OutboxEvent.objects.using(alias).filter(event_id=event_id).first()
    if row is not None:
        out["outbox"] = {
            "type": row.event_type,
            "created_at": _iso(row.created_at),
            "sent_at": _iso(row.sent_at),
            "attempts": row.attempts,
            "last_error": row.last_error,
            "body": row.body,
        }
        out["types"].append(row.event_type)
    marks = list(ProcessedEvent.objects.using(alias).filter(event_id=event_id).order_by("processed_at"))
    out["applied"] = [
        {"handler": m.handler, "at": _iso(m.processed_at), "duplicates_suppressed": m.duplicates}
        for m in marks
        if m.service == service or not m.service
    ]
    out["types"].extend(m.event_type for m in marks)
    tid = task_id(event_id, service)
    out["result"] = _result(alias, tid)
    if out["result"]:
        out["types"].append(out["result"]["task"])
    out["redeliveries"] = {r.retries: r.count for r in Redelivery.objects.using(alias).filter(task_id=tid)}
    letters = DeadLetter.objects.using(alias).filter(event_id=event_id).order_by("created_at")
    out["dead_letters"] = [
        {
            "id": d.pk,
            "reason": d.reason,
            "attempts": d.attempts,
            "at": _iso(d.created_at),
            "detail": d.detail[:300],
            "replays": d.replays,
            "replayed_at": _iso(d.replayed_at),
        }
        for d in letters
        if d.service == service
    ]
    out["types"].extend(d.event_type for d in letters if d.event_type)
    for letter in letters:
        try:
            out.setdefault("envelope", replayable_args(letter)[0])
        except NotReplayable:
            continue
    out["records"] = bool(
        out.get("outbox") or out["applied"] or out["result"] or out["redeliveries"] or out["dead_letters"]
    )
    return out


def _result(alias: str, tid: str) -> dict[str, Any] | None:  # Any: a result row, JSON-shaped (str, None)
    try:
        from django_celery_results.models import TaskResult
    except (ImportError, RuntimeError):  # the host does not store results in its database
        return None
    row = TaskResult.objects.using(alias).filter(task_id=tid).first()
    if row is None:
        return None
    worker, created = row.worker, row.date_created  # type: ignore[attr-defined]  # fields its stubs lack
    return {
        "task_id": tid,
        "task": row.task_name,
        "status": row.status,
        "worker": worker,
        "created_at": _iso(created),
        "done_at": _iso(row.date_done),
        "args": row.task_args,
    }


# Any: the JSON-shaped records of _read, and the envelope (JSON)
def _envelope(outbox: list[dict[str, Any]], found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The envelope, from the outbox body, a result row's arguments or a dead letter's message."""
    for records in found.values():
        if isinstance(records.get("envelope"), dict):
            return records["envelope"]
    texts = [o["body"] for o in outbox] + [r["result"]["args"] for r in found.values() if r.get("result")]
    for text in texts:
        try:
            value = json.loads(text)
            while isinstance(value, str):  # results may hold the arguments' JSON as a JSON string
                value = json.loads(value)
            envelope = value[0][0] if isinstance(value[0], list) else value[0]
            if isinstance(envelope, dict) and envelope.get("id"):
                return envelope
        except (ValueError, TypeError, IndexError, KeyError):
            continue
    return {}


def _broker(event_id: str, app: Celery) -> dict[str, Any]:  # Any: JSON-shaped findings (table, copies, notes)
    """The binding table, and (Redis) the copies of the event still in a queue or held by a worker."""
    conf = settings()
    out: dict[str, Any] = {"kind": None, "table": None, "copies": {}, "envelope": {}, "notes": []}  # Any: as above
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=2)
        out["kind"] = "redis" if is_redis(conn) else "rabbitmq"
        try:
            out["table"] = bindings(conn)
        except ManagementAPIUnavailable as exc:
            out["notes"].append(f"bindings not listed: {exc.cause} (RabbitMQ needs its management API)")
        if not is_redis(conn):
            out["notes"].append(
                "RabbitMQ cannot show a queued copy without redelivering it: see `events status` for the queue's depth"
            )
            return out
        queues = {q for _, q in out["table"] or []} | {conf.queue_name(s) for s in consuming_services()}
        with conn.channel() as channel:
            client = channel.client  # type: ignore[attr-defined]  # kombu's stubs: channel() is a bare StdChannel; Redis's has .client
            for queue in sorted(queues):
                state, copy = _redis_copy(client, queue, event_id)
                if state and copy is not None:
                    out["copies"][queue] = state
                    out["envelope"] = out["envelope"] or copy.envelope or {}
    return out


def _redis_copy(client: redis.Redis, queue: str, event_id: str) -> tuple[str | None, QueueItem | None]:
    """``("waiting", copy)`` (in the queue), ``("held", copy)`` (taken by a worker, not acknowledged)."""
    needle = event_id.encode()
    for state, items in (
        ("waiting", client.lrange(queue, 0, SCAN_LIMIT - 1)),
        ("held", [*client.hvals(f"unacked:{queue}"), *client.lrange(inflight_key(queue), 0, -1)]),
    ):
        for raw in items:
            if needle not in raw:
                continue
            item = read_item(raw, unacked=True)  # an unacked entry is [message, exchange, routing key]
            if item is not None and _copy_of(item, event_id):
                return state, item
    return None, None


def _copy_of(item: QueueItem, event_id: str) -> bool:
    return item.headers.get("root_id") == event_id or (item.task_id or "").startswith(event_id + ":")


def _verdict(
    row: dict[str, Any],  # Any: a row of the report (JSON-shaped, see _read)
    records: dict[str, Any] | None,  # Any: a service's records (JSON-shaped, see _read)
    wanted: list[str],
    bound: list[str] | None,
    copy: str | None,
) -> str:
    if records is not None and records.get("error"):
        return "its database could not be read: " + records["error"]
    letters = row.get("dead_letters") or []
    if letters and not letters[-1]["replays"]:
        return f"dead-lettered ({letters[-1]['reason']}): see `events deadletters show {letters[-1]['id']}`"
    if row.get("applied"):
        duplicates = sum(a["duplicates_suppressed"] for a in row["applied"])
        return "processed" + (f", {duplicates} duplicate(s) suppressed" if duplicates else "")
    result = row.get("result")
    if result and result["status"] == "SUCCESS":
        return "processed"
    if copy == "waiting":
        return "waiting in its queue: no worker took it yet (is its worker running? `events status`)"
    if copy == "held":
        return "held by a worker, not finished yet"
    if result:
        return f"last result {result['status']}: retrying or running"
    if letters:
        return f"replayed from dead letter #{letters[-1]['id']}, not processed yet"
    if not wanted:
        if records is not None and records.get("outbox"):
            return "the producer (its outbox row is above); no handler of its own takes this type"
        return "not subscribed: no handler of this service takes this type"
    if bound == []:
        return (
            "no binding: its queue is not bound to this type on the broker, so it never got a copy "
            "(run `events declare`; `events topology verify` shows the drift)"
        )
    if records is None:
        return "its database is not readable here (configure it, or run trace as that service)"
    return (
        "no trace: not delivered yet (queued on RabbitMQ, or its worker is down: `events status`), "
        "or published before its queue was bound"
    )


def render(data: dict[str, Any]) -> str:  # Any: trace's JSON-shaped report
    lines = [
        f"event {data['event_id']}  type {data['type'] or '(unknown: found nowhere)'}",
        f"  owner {data['owner'] or '-'}; sent by {data['source'] or '?'} at {data['time'] or '?'}",
    ]
    for o in data["outbox"]:
        state = f"published {o['sent_at']}" if o["sent_at"] else f"NOT published yet ({o['last_error'] or 'pending'})"
        lines.append(f"  outbox of {o['service']}: written {o['created_at']}, {state}, attempts {o['attempts']}")
    if not data["outbox"]:
        lines.append("  outbox: no row (sent outside a transaction, or the producer's database is not readable here)")
    for row in data["services"]:
        lines.append(f"  {row['service']}: {row['verdict']}")
        for a in row.get("applied") or []:
            lines.append(
                f"      applied by {a['handler']} at {a['at']}"
                + (f" ({a['duplicates_suppressed']} duplicate(s) suppressed)" if a["duplicates_suppressed"] else "")
            )
        if row.get("result"):
            r = row["result"]
            lines.append(f"      result {r['status']} ({r['task_id']}) created {r['created_at']} done {r['done_at']}")
        for retries, count in (row.get("redeliveries") or {}).items():
            lines.append(
                f"      a redelivered attempt (retry #{retries}) is running or never finished; {count} earlier "
                "one(s) never finished (worker died or time limit)"
            )
        for d in row.get("dead_letters") or []:
            lines.append(
                f"      dead letter #{d['id']} [{d['reason']}] at {d['at']} after {d['attempts']} attempt(s), "
                f"replays {d['replays']}: {d['detail'][:120]}"
            )
        if row.get("bound_now") is not None and row["subscribed_in_code"]:
            lines.append(
                f"      bound now: {', '.join(row['bound_now']) or 'NO'}; handlers ask for "
                f"{', '.join(row['subscribed_in_code'])}"
            )
    lines.extend(f"  note: {n}" for n in data["notes"])
    return "\n".join(lines)
