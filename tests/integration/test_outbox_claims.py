"""Outbox claims (issue 9.6): two relay processes for one service publish every row exactly once,
on SQLite (a lease by conditional UPDATE) and on PostgreSQL (``FOR UPDATE SKIP LOCKED``), to a
real Redis and a real RabbitMQ; what arrived is counted in the brokers' queues."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kombu import Connection, Queue

from event_tasks import catalog
from event_tasks.brokers.message import encode_body
from event_tasks.brokers.topology import declare, service_queue
from event_tasks.testing import wait_until
from tests.brokers import RedisServer, rabbitmq_vhost
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import PROBE_ENV, ROOT

pytestmark = [pytest.mark.timeout(300)]
SERVICES = ("alpha", "beta")
ROWS = 3000


@pytest.fixture(scope="module")
def own_redis():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request):
    """A broker of this test's own with events.alpha and events.beta subscribed to the probe type."""
    catalog.load("tests.fabric.schemas")
    if request.param == "redis":
        server = request.getfixturevalue("own_redis")
        server.client().flushdb()
        yield _declared(server.url)
    else:
        with rabbitmq_vhost() as url:
            yield _declared(url)


def _declared(url: str) -> str:
    with Connection(url) as conn:
        declare(conn, [service_queue(s, [PROBE_CREATED]) for s in SERVICES])
    return url


def drain(url: str, queue: str) -> Counter[str]:
    """Every message in ``queue``, taken off it: how many copies of each event id arrived."""
    seen: Counter[str] = Counter()
    with Connection(url) as conn:
        q = Queue(queue, no_declare=True)(conn.default_channel)
        while (message := q.get(no_ack=True)) is not None:
            seen[message.headers["root_id"]] += 1
    return seen


class Database:
    """A migrated service database the relays and the test share: SQLite file or PostgreSQL."""

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind

    def connect(self):
        if self.kind == "sqlite":
            return sqlite3.connect(self.url[len("sqlite:///") :], timeout=30)
        import psycopg

        return psycopg.connect(self.url.replace("postgres://", "postgresql://"))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        con = self.connect()
        try:
            cur = con.cursor()
            cur.execute(self._sql(sql), params)
            return cur.fetchall()
        finally:
            con.close()

    def insert_outbox(self, events: list[tuple[str, str, str, str]]) -> None:
        """Committed, unsent rows (as ``send_event`` inside a transaction leaves them when the broker is down)."""
        con = self.connect()
        try:
            cur = con.cursor()
            cur.executemany(
                self._sql(
                    "INSERT INTO event_tasks_outboxevent (event_id, event_type, key, body, argsrepr, created_at, "
                    "attempts, last_error, claimed_by) VALUES (?, ?, NULL, ?, ?, '2000-01-01 00:00:00+00:00', 0, '', '')"
                ),
                events,
            )
            con.commit()
        finally:
            con.close()

    def _sql(self, sql: str) -> str:
        return sql if self.kind == "sqlite" else sql.replace("?", "%s")


def service_env(db: Database, broker_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        **PROBE_ENV,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EVENT_TASKS_SERVICE": "prober",
        "DATABASE_URL": db.url,
        "CELERY_BROKER_URL": broker_url,
        "EVENT_TASKS_OUTBOX_GRACE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PROBER_DATABASE_URL", None)
    return env


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'prober.sqlite3'}", "sqlite")
        yield db
    else:
        pg = request.getfixturevalue("postgres_database")
        yield Database(pg.url, "postgresql")


def events(count: int) -> list[tuple[str, str, str, str]]:
    import uuid

    out = []
    for n in range(count):
        event_id = str(uuid.uuid4())
        envelope = {
            "id": event_id,
            "type": PROBE_CREATED,
            "source": "prober",
            "time": "2026-11-30T07:00:00.000000Z",
            "specversion": "1.0",
            "key": None,
        }
        body, argsrepr = encode_body(envelope, {"n": n, "note": ""})
        out.append((event_id, PROBE_CREATED, body, argsrepr))
    return out


def test_two_relays_publish_every_row_exactly_once(database: Database, broker: str, tmp_path: Path):
    env = service_env(database, broker)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180)
    logs = [tmp_path / f"relay{i}.log" for i in (1, 2)]
    relays = [
        subprocess.Popen(
            [sys.executable, "manage.py", "events", "relay", "--batch", "10"],
            cwd=ROOT,
            env=env,
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    try:
        wait_until(
            lambda: all("started" in log.read_text() for log in logs),
            60,
            message=lambda: "both relays to start: " + " | ".join(log.read_text()[-500:] for log in logs),
        )
        rows = events(ROWS)
        database.insert_outbox(rows)  # one commit: both relays find them at once
        pending = lambda: database.query(  # noqa: E731
            "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL"
        )[0][0]
        wait_until(
            lambda: pending() == 0, 120, 0.2, message=lambda: f"the relays to publish every row ({pending()} pending)"
        )
    finally:
        for relay in relays:
            relay.terminate()
        for relay in relays:
            relay.wait(30)
    output = "\n".join(log.read_text() for log in logs)
    assert "Traceback" not in output, output[-3000:]
    senders = Counter(by.split("#")[0] for (by,) in database.query("SELECT claimed_by FROM event_tasks_outboxevent"))
    assert len(senders) == 2 and min(senders.values()) > 0, senders  # both relays really took part
    expected = {event_id for event_id, *_ in rows}
    for service in SERVICES:
        arrived = drain(broker, f"events.{service}")
        assert set(arrived) == expected, f"{service}: {len(expected - set(arrived))} missing"
        twice = {k: v for k, v in arrived.items() if v > 1}
        assert not twice, f"{service}: {len(twice)} events published more than once"


@pytest.mark.django_db(transaction=True)
def test_a_claim_is_exclusive_until_its_lease_runs_out_and_the_senders_own_claim_is_respected(own_redis):
    """The claim step alone, in this process's database: what a second relay may take, and when."""
    import datetime as dt

    from celery import Celery
    from django.utils import timezone

    from event_tasks.app import install
    from event_tasks.models import OutboxEvent
    from event_tasks.send.publisher import Publisher
    from event_tasks.send.relay import Relay

    catalog.load("tests.fabric.schemas")
    app = Celery("claims", broker=own_redis.url, set_as_current=False)
    install(app)
    publisher = Publisher(app, "prober")
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(event_id=e, event_type=t, body=b, argsrepr=a) for e, t, b, a in events(5)]
    )
    sender = OutboxEvent.objects.create(
        event_id="held-by-its-sender",
        event_type=PROBE_CREATED,
        body="[]",
        claimed_by="commit:elsewhere",
        claimed_until=timezone.now() + dt.timedelta(seconds=30),
    )
    first, second = Relay(publisher, grace=0, batch=3, lease=0.5), Relay(publisher, grace=0, batch=10, lease=30)
    taken_first = {r.pk for r in first.claim()}
    taken_second = {r.pk for r in second.claim()}
    assert len(taken_first) == 3 and len(taken_second) == 2 and not taken_first & taken_second
    assert sender.pk not in taken_first | taken_second  # the on-commit publish still holds it
    wait_until(
        lambda: {r.pk for r in second.claim()} == taken_first,
        5,
        0.1,
        message="the first relay's rows to be free again after its lease",
    )
    OutboxEvent.objects.filter(pk=sender.pk).update(claimed_until=timezone.now() - dt.timedelta(seconds=1))
    assert [r.pk for r in second.claim()] == [sender.pk]  # its sender died: a relay takes it over
