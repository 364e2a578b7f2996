"""Routing stays correct while the subscription table changes under load.

A thread sends events as fast as it can while the table changes: a binding made by another kombu
client, ``events declare``, a worker starting, ``events topology verify --prune``, a queue
deleted by another kombu client, the same binding made again. Each send and each change is timed; afterwards every copy is
read where it landed (the queues, and the handler's record of the worker that consumed), and each
event's set of queues must be the table of one moment its send could have seen: before a change
that had not begun when the send ended, after one that had ended when the send began. On Redis (where
the fabric routes by the table itself) the table holds 1,000 other bindings as well, so a send routes by the routes the publish script
keeps (docs/decisions/0014) and every change must be noticed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis as redis_lib
from kombu import Connection, Exchange, Queue

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(300)

OTHER_BINDINGS = 1000
TABLE = "_kombu.binding.events"


@dataclass
class Change:
    what: str
    table: frozenset[str]  # the queues bound to PROBE_CREATED once it is made
    began: float = 0.0
    ended: float = 0.0


@dataclass
class Sender:
    plat: Platform
    sends: dict[str, tuple[float, float]] = field(default_factory=dict)  # event id -> (began, ended)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                began = time.monotonic()
                event = self.plat.send(PROBE_CREATED, {"n": n})
                self.sends[event.id] = (began, time.monotonic())
                n += 1
                time.sleep(0.002)  # ~300 sends/s here: load, and few enough for the worker to drain
        except BaseException as exc:
            self.error = exc

    def sent_since(self, moment: float) -> int:
        return sum(1 for began, _ in list(self.sends.values()) if began > moment)


def foreign_bind(url: str, queue: str, routing_key: str) -> None:
    """A binding made by a kombu client that is not the fabric's."""
    with Connection(url) as conn, conn.channel() as channel:
        Queue(queue, Exchange("events", type="topic", durable=True), routing_key=routing_key, durable=True)(
            channel
        ).declare()


def foreign_delete(url: str, queue: str) -> None:
    """A kombu client deletes its queue: on Redis the one way kombu removes a binding (its
    ``queue_unbind`` changes its in-memory table only)."""
    with Connection(url) as conn, conn.channel() as channel:
        q = Queue(queue, Exchange("events", type="topic", durable=True), routing_key=PROBE_CREATED)(channel)
        q.declare()  # kombu deletes the bindings this connection knows of
        q.delete()


def drain(url: str, queue: str) -> list[str]:
    """The event ids of the copies waiting in ``queue`` (taken off it)."""
    ids = []
    with Connection(url) as conn, conn.channel() as channel:
        q = Queue(queue, channel=channel)
        while (message := q.get(no_ack=True)) is not None:
            ids.append(str(message.headers["id"]).rsplit(":", 1)[0])
    return ids


@pytest.fixture
def plat(fresh_redis_url, workdir, probe_template_db):
    plat = Platform(fresh_redis_url, workdir / "routing-under-change", template_db=probe_template_db)
    yield plat
    plat.stop_all()


def test_every_copy_lands_where_the_table_said(plat):
    """On Redis, where the fabric routes by the table itself (RabbitMQ routes by its own bindings)."""
    broker_url = plat.broker_url
    plat.tooling("events", "declare", "--service", "alpha")
    redis_lib.Redis.from_url(broker_url).sadd(
        TABLE,
        *(f"org.example.other{i}.v1\x06\x16\x06\x16other.q{i % 30}" for i in range(OTHER_BINDINGS)),
    )

    def bound() -> frozenset[str]:
        """The queues bound to PROBE_CREATED, as the broker has them (read apart from the fabric)."""
        members = (m.decode().split("\x06\x16") for m in redis_lib.Redis.from_url(broker_url).smembers(TABLE))
        return frozenset(parts[2] for parts in members if parts[0] == PROBE_CREATED)

    table = {"events.alpha"}
    steps: list[tuple[Change, Callable[[], None]]] = []

    def step(what: str, action: Callable[[], None], add: str = "", remove: str = "") -> None:
        table.add(add) if add else table.discard(remove)
        steps.append((Change(what, frozenset(table)), action))

    step(
        "another kombu client binds audit.copies",
        lambda: foreign_bind(broker_url, "audit.copies", PROBE_CREATED),
        add="audit.copies",
    )
    step(
        "events declare --service beta",
        lambda: plat.tooling("events", "declare", "--service", "beta"),
        add="events.beta",
    )
    step(
        "another kombu client binds events.delta (not a type delta consumes)",
        lambda: foreign_bind(broker_url, "events.delta", PROBE_CREATED),
        add="events.delta",
    )
    step("epsilon's worker starts", lambda: plat.start("epsilon"), add="events.epsilon")
    taken: list[str] = []  # copies read off audit.copies before its queue was deleted

    def delete_audit_copies() -> None:
        taken.extend(drain(broker_url, "audit.copies"))  # a copy pushed after this: sent during the change
        foreign_delete(broker_url, "audit.copies")

    step("another kombu client deletes audit.copies", delete_audit_copies, remove="audit.copies")
    # prune removes delta's stale binding, and those of queues no service consumes (the 1,000
    # others): the table shrinks under the sender
    step(
        "events topology verify --prune --service delta",
        lambda: plat.tooling("events", "topology", "verify", "--prune", "--service", "delta", check=False),
        remove="events.delta",
    )
    step(
        "another kombu client binds audit.copies again",
        lambda: foreign_bind(broker_url, "audit.copies", PROBE_CREATED),
        add="audit.copies",
    )

    sender = Sender(plat)
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    first = Change("at the start", frozenset({"events.alpha"}), 0.0, 0.0)
    changes = [first]
    try:
        for change, action in steps:
            mark = time.monotonic()
            wait_until(
                lambda: sender.sent_since(mark) >= 50 or sender.error is not None, 60, 0.01, "sends between changes"
            )
            change.began = time.monotonic()
            action()
            change.ended = time.monotonic()
            changes.append(change)
            assert bound() == change.table, f"after {change.what!r} the broker's table is {sorted(bound())}"
        mark = time.monotonic()
        wait_until(
            lambda: sender.sent_since(mark) >= 50 or sender.error is not None, 60, 0.01, "sends after the last change"
        )
    finally:
        sender.stop.set()
        thread.join(30)
    assert sender.error is None, f"a send failed: {sender.error!r}"

    # Where each copy landed: the queues no worker consumes, and epsilon's handler (its worker
    # ran): once its queue is empty it stops (a warm shutdown puts back what it had not run).
    wait_until(lambda: plat.queue_depths().get("events.epsilon", 0) == 0, 120, 0.2, "events.epsilon to be drained")
    plat.worker("epsilon").stop()
    landed: dict[str, set[str]] = {event_id: set() for event_id in sender.sends}
    for event_id in taken:
        landed[event_id].add("audit.copies")
    for record in plat.seen("epsilon"):
        landed[record["id"]].add("events.epsilon")
    for queue in ("events.alpha", "events.beta", "events.delta", "audit.copies", "events.epsilon"):
        for event_id in drain(broker_url, queue):
            landed[event_id].add(queue)

    wrong = []
    for event_id, (began, ended) in sender.sends.items():
        possible = [
            c.table
            for k, c in enumerate(changes)
            if ended >= c.began and (k + 1 == len(changes) or began <= changes[k + 1].ended)
        ]
        if frozenset(landed[event_id]) not in possible:
            wrong.append((event_id, sorted(landed[event_id]), [sorted(t) for t in possible]))
    seen_tables = {frozenset(q) for q in landed.values()}
    assert not wrong, f"{len(wrong)} of {len(sender.sends)} events landed outside the table: {wrong[:3]}"
    # each table was live for a while: every one of them was the route of some send
    assert {c.table for c in changes} <= seen_tables, [sorted(t) for t in seen_tables]
