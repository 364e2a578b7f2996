"""The fault suite: nothing lost, nothing applied twice, while things get killed.

Each variant: a broker of its own (a private AOF redis-server; a private RabbitMQ node), 3
consuming services on prefork workers, each with a database of its own, EVENT_TASKS_FAULT_EVENTS
events (default 3,000; 2,000 in the hard variants) from a producer process, a third of them
through the outbox and its relay process (``python manage.py events relay``). During every run:
two workers are SIGKILLed mid-stream, the broker goes down once, ~30% of deliveries fail
transiently once, one poison message kills its worker on every delivery, one invalid message
arrives. At the end, for every service, the applied events equal the expected set exactly (none
lost, none applied twice), the poison and invalid messages are dead letters with their reasons,
and the outbox is empty.

The variants (all four are ``make faults-long``'s, marker ``long``, with 10,000 events; ``make
test-cluster`` runs the cluster fault test, ``test_cluster_faults.py``, instead: see the end of this text):

* ``redis-postgres-hard`` — PostgreSQL for every service database and the producer's (one private
  database each; ``select_for_update`` and the duplicate marks really lock there), and hard
  crashes: Redis runs with ``appendfsync always`` and is SIGKILLed mid-run, then started on the
  same port and data dir; the relay is SIGKILLed twice (during the outage, with a committed outbox
  row waiting for it, and right after the producer's held commit); the producer is SIGKILLed three
  times: inside an open outbox transaction (that event must never arrive), just after a commit and
  before its publish on commit (the relay must send it), and at whatever it is doing at 80%; both
  are started again. Direct sends carry the producer's own id (``send_event(..., id=…)``), so a
  resent one is suppressed as a duplicate.
* ``rabbitmq-postgres-hard`` — the same on RabbitMQ (persistent messages, publisher confirms),
  whose node is stopped cleanly (``rabbitmqctl stop``) and started again.
* ``redis-sqlite`` — the SQLite service databases the demo and a fresh checkout use, with the
  graceful faults only (Redis stopped with SIGTERM, ``appendfsync everysec``) and a new id for
  every resent send (the ``send_event`` default).

Why three and not four, and 2,000 events in the hard ones: before, the suite was two SQLite
variants of ~87 s each on a quiet machine, and the budget for PostgreSQL and hard crashes was ~4
minutes of CI on top. Measured in one run at 3,000 events each (load average 2-8 on the 2-core
machine): redis-postgres-hard 202 s, rabbitmq-postgres-hard 150 s, redis-sqlite 114 s. Most of a
run is consuming (3 services, ~5,500 transient failures retried), so it scales with the event
count; at 2,000, with every kill at the same points of the run, a later run (load average 5-13)
took 162 s, 164 s and 150 s (redis-sqlite, 3,000): ~95 s each for the hard variants on a quiet
machine, where redis-sqlite takes ~90 s, so ~1.7 minutes more than before. A fourth
(``rabbitmq-sqlite``, ~1.5 minutes) adds little for its cost: RabbitMQ's delivery path does not
depend on the service database, ``rabbitmq-postgres-hard`` covers it with strictly more faults and
real row locks, and ``redis-sqlite`` covers the SQLite duplicate marks. It stays in ``make
faults-long`` (10,000 events, all four).

Since then ``make test`` as a whole grew past 16 minutes on a quiet machine (the operations,
openedx, deploy and time-limit tests), so ``redis-sqlite`` left the default run too: SQLite
duplicate marks, crashes and restarts are covered by the delivery, crash and broker-restart
tests on both brokers; ``make faults-long`` runs it.

When the cluster fault test joined ``make test`` (a 3-node RabbitMQ cluster and a Redis Sentinel
set, nodes SIGKILLed mid-run, ~3-4 minutes each), the suite would have passed 20 minutes, so the
hard variants moved to ``make faults-long`` too: the cluster test (``make test-cluster``, which CI
runs after ``make test``) keeps 3,000
events, the outbox and its relay, transient failures and broker SIGKILLs on both engines; producer
and relay SIGKILLs, the whole broker down, PostgreSQL row locks, the poison and the invalid
message run nightly here and in the crash, outbox and failure integration tests.

The producer's journal (``tests/faults/produce.py``) says what it knew when it was killed; the
ledger (``tests/faults/journal.py``) turns it and the producer's outbox table into what must
arrive (confirmed sends, committed outbox rows), what must never arrive (outbox transactions that
did not commit), and what may arrive once (a send without its own id that was refused or cut off
by the kill: the producer cannot know whether it left and sends it again as a new event).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from event_tasks.brokers.message import encode_body, headers
from event_tasks.envelope import SPECVERSION
from event_tasks.testing import wait_until
from tests.brokers import PrivateRabbitMQ, RedisServer, rabbitmqctl
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.faults.journal import Ledger
from tests.integration.fabric import ROOT, Platform, migrate

# Events per run: EVENT_TASKS_FAULT_EVENTS for every variant, else 3,000 (SQLite) and 2,000 (hard variants).
EVENTS_SET = os.environ.get("EVENT_TASKS_FAULT_EVENTS")
EVENTS = int(EVENTS_SET or 3000)
SERVICES = ("f1", "f2", "f3")
FAULT_ENV = {
    "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.faults.services",
    "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
    "EVENT_TASKS_VISIBILITY_TIMEOUT": "10",
    "EVENT_TASKS_HANDLER_TIME_LIMIT": "8",
    "EVENT_TASKS_RESTORE_INTERVAL": "1",
    "CELERY_WORKER_LOST_WAIT": "1",
    "EVENT_TASKS_MAX_RETRIES": "6",
    "EVENT_TASKS_RETRY_BACKOFF": "0.2",
    "EVENT_TASKS_RETRY_BACKOFF_MAX": "1",
    "EVENT_TASKS_PUBLISH_TIMEOUT": "0.5",
    "EVENT_TASKS_OUTBOX_GRACE": "1",
    "EVENT_TASKS_OUTBOX_LEASE": "10",  # a SIGKILLed relay's claims run out in 10 s (like the visibility timeout)
}
STEP_WAIT = 180 + EVENTS * 0.03  # seconds for one step's condition (f1's progress, the producer's)
pytestmark = pytest.mark.timeout(600 + EVENTS * 0.12)


@dataclass(frozen=True)
class Variant:
    broker: str  # redis | rabbitmq
    database: str  # sqlite | postgres
    hard: bool  # SIGKILL the relay and the producer (and Redis, with appendfsync always)

    @property
    def events(self) -> int:
        return int(EVENTS_SET) if EVENTS_SET else 2000 if self.hard else 3000

    @property
    def id(self) -> str:
        return f"{self.broker}-{self.database}" + ("-hard" if self.hard else "")


# Every variant is `make faults-long`'s (marker `long`): `make test` runs the cluster fault test
# (tests/faults/test_cluster_faults.py) instead, to stay under 20 minutes.
VARIANTS = [
    pytest.param(v, marks=pytest.mark.long, id=v.id)
    for v in (
        Variant("redis", "postgres", True),
        Variant("rabbitmq", "postgres", True),
        Variant("redis", "sqlite", False),
        Variant("rabbitmq", "sqlite", False),
    )
]


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> Variant:
    return request.param


@pytest.fixture
def fault_broker(variant: Variant):
    """A broker of this test's own that it may restart or kill."""
    if variant.broker == "redis":
        broker: RedisServer | PrivateRabbitMQ = RedisServer(
            appendonly=True, appendfsync="always" if variant.hard else "everysec"
        )
    else:
        broker = PrivateRabbitMQ()
    broker.start()
    yield broker
    broker.cleanup()


class Databases:
    """Read-only SQL on each process's database: a SQLite file or a PostgreSQL URL per name."""

    def __init__(self, where: dict[str, Path | str]) -> None:
        self.where = where
        self._pg: dict[str, Any] = {}

    def rows(self, name: str, sql: str) -> list[tuple]:
        where = self.where[name]
        if isinstance(where, Path):
            con = sqlite3.connect(where, timeout=30)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        if name not in self._pg:
            import psycopg

            self._pg[name] = psycopg.connect(where, autocommit=True)
        return self._pg[name].execute(sql).fetchall()

    def close(self) -> None:
        for con in self._pg.values():
            con.close()


def in_flight(broker: RedisServer | PrivateRabbitMQ) -> int:
    """Messages still in the queues or taken and not acknowledged."""
    if isinstance(broker, RedisServer):
        client = broker.client()
        return sum(client.llen(f"events.{s}") + client.hlen(f"unacked:events.{s}") for s in SERVICES)
    out = rabbitmqctl("-n", broker.node, "list_queues", "name", "messages", "--quiet", "--no-table-headers")
    return sum(
        int(line.split()[1]) for line in out.splitlines() if line.split()[:1] and line.split()[0].startswith("events.")
    )


def queue_state(broker: RedisServer | PrivateRabbitMQ, service: str) -> str:
    """A service queue's waiting and unacknowledged messages, for a failure message."""
    try:
        if isinstance(broker, RedisServer):
            client = broker.client()
            return f"{client.llen(f'events.{service}')} waiting, {client.hlen(f'unacked:events.{service}')} unacked"
        out = rabbitmqctl(
            "-n",
            broker.node,
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "--quiet",
            "--no-table-headers",
        )
        rows = [line.split() for line in out.splitlines()]
        return next(
            (f"{r[1]} ready, {r[2]} unacked, {r[3]} consumers" for r in rows if r[:1] == [f"events.{service}"]), "?"
        )
    except Exception as exc:
        return f"unknown ({exc!r})"


def inject_invalid(url: str) -> str:
    event_id = "invalid-" + os.urandom(6).hex()
    envelope = {
        "id": event_id,
        "type": PROBE_CREATED,
        "source": "prober",
        "time": "2026-01-01T00:00:00Z",
        "specversion": SPECVERSION,
        "key": None,
    }
    body, argsrepr = encode_body(envelope, {"n": "not a number"})
    with Connection(url) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(""),
            routing_key="events.f3",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            headers=headers(PROBE_CREATED, event_id, f"{event_id}:f3", argsrepr),
        )
    return event_id


def test_nothing_lost_nothing_applied_twice(variant: Variant, fault_broker, tmp_path: Path, postgres_databases, capsys):
    broker = fault_broker
    events = variant.events
    started = time.monotonic()
    names = ("prober", *SERVICES)
    if variant.database == "postgres":
        template = postgres_databases(1)[0]
        migrate(template.url, FAULT_ENV)  # every fault app's tables; each process uses its own copy
        copies = postgres_databases(len(names), template=template.name)
        urls = {name: db.url for name, db in zip(names, copies)}
        dbs = Databases(dict(urls))
        plat = Platform(broker.url, tmp_path / "platform", env=FAULT_ENV, database_urls=urls)
        producer_db = urls["prober"]
    else:
        plat = Platform(broker.url, tmp_path / "platform", env=FAULT_ENV)
        producer_path = tmp_path / "producer.sqlite3"
        migrate(producer_path, FAULT_ENV)
        dbs = Databases({"prober": producer_path, **{s: plat.db_path(s) for s in SERVICES}})
        producer_db = f"sqlite:///{producer_path}"
    producer_env = {
        **os.environ,
        **FAULT_ENV,
        "CELERY_BROKER_URL": broker.url,
        "DATABASE_URL": producer_db,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EVENT_TASKS_SERVICE": "prober",
    }
    if variant.hard:  # direct sends carry the producer's own id: a resent one is the same event
        producer_env["FAULT_ID_PREFIX"] = "p" + os.urandom(4).hex()
    for s in SERVICES:
        plat.worker(s, pool="prefork", concurrency=2)
    plat.start(*SERVICES)

    relay_log = open(tmp_path / "relay.log", "ab")
    producer_log = open(tmp_path / "producer.log", "ab")
    journal = tmp_path / "journal.txt"
    # Two outbox events (n % 3 == 2) where the producer of a hard variant stops to be killed:
    # inside its open transaction, and just after a commit, before its publish on commit.
    hold, hold_committed = ((int(events * f) // 3) * 3 + 2 for f in (0.2, 0.55)) if variant.hard else (-1, -1)

    def start_relay() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "manage.py", "events", "relay"],
            cwd=ROOT,
            env=producer_env,
            stdout=relay_log,
            stderr=subprocess.STDOUT,
        )

    def start_producer(*holds: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.faults.produce", str(events), str(journal), "250", *map(str, holds)],
            cwd=ROOT,
            env=producer_env,
            stdout=producer_log,
            stderr=subprocess.STDOUT,
        )

    def sigkill(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def applied_count(s: str) -> int:
        return dbs.rows(s, f"SELECT count(*) FROM fault_{s}_applied")[0][0]

    def outbox_waiting() -> int:
        return dbs.rows("prober", "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL")[0][0]

    def journal_text() -> str:
        return journal.read_text() if journal.exists() else ""

    def journal_lines() -> list[str]:
        return journal_text().splitlines()

    def produced() -> int:
        last = journal_lines()[-1:]
        return int(last[0].split()[1]) if last else 0

    relay = start_relay()
    producer = start_producer(hold, hold_committed)
    figures: dict[str, Any] = {"variant": variant.id, "events": events}
    kills: Counter[str] = Counter()
    timeline: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:.1f}s {what}")

    def kill_worker(service: str) -> None:
        worker = plat.worker(service)
        worker.kill()
        kills["workers"] += 1
        mark(f"SIGKILL {service} (f1 applied {applied_count('f1')})")
        worker.start()

    try:
        poison = plat.send(PROBE_CREATED, {"n": 0}, key="exit:f2")
        invalid_id = inject_invalid(broker.url)

        if not variant.hard:  # the graceful faults, at points of f1's progress
            for fraction, action in ((0.2, "kill f1"), (0.45, "restart broker"), (0.7, "kill f3")):
                wait_until(
                    lambda: applied_count("f1") >= events * fraction,
                    STEP_WAIT,
                    0.05,
                    f"f1 to apply {fraction:.0%} ({action})",
                )
                if action.startswith("kill"):
                    kill_worker(action.split()[1])
                else:
                    broker.stop()  # SIGTERM / rabbitmqctl stop: the broker shuts down cleanly
                    broker.start()
                    kills["broker restarts"] += 1
                    mark("broker restarted")
        else:
            # 1. The producer, held inside an open outbox transaction: the broker goes down (Redis:
            #    SIGKILL with appendfsync always; RabbitMQ: a clean stop), the producer is SIGKILLed
            #    (that event must never arrive) and started again: with the broker still down, its
            #    next outbox commit cannot publish on commit and its next direct send is refused.
            wait_until(lambda: f"open {hold} " in journal_text(), STEP_WAIT, 0.05, f"the producer to hold event {hold}")
            if isinstance(broker, RedisServer):
                broker.kill()
            else:
                broker.stop()
            kills["broker"] += 1
            sigkill(producer)
            kills["producer"] += 1
            mark(
                f"broker {'SIGKILLed' if isinstance(broker, RedisServer) else 'stopped'}; "
                f"SIGKILL producer in the transaction of event {hold}"
            )
            producer = start_producer(-1, hold_committed)
            # 2. The relay, SIGKILLed while that committed row waits for it; then the broker comes back
            #    (Redis: same port, same data dir) and the relay starts again.
            wait_until(lambda: "unconfirmed " in journal_text(), 60, 0.1, "the producer to see the broker down")
            figures["outbox rows waiting at the first relay kill"] = outbox_waiting()
            assert figures["outbox rows waiting at the first relay kill"] >= 1
            sigkill(relay)
            kills["relay"] += 1
            mark("SIGKILL relay")
            broker.start()
            relay = start_relay()
            mark("broker back; relay started")
            # 3. The producer just after a commit, before its publish on commit (the relay must send
            #    that row); then the relay.
            wait_until(
                lambda: f"committed {hold_committed} " in journal_text(),
                STEP_WAIT,
                0.05,
                f"the producer to commit event {hold_committed} and hold",
            )
            sigkill(producer)
            kills["producer"] += 1
            # Usually that row still waits (the relay leaves rows younger than EVENT_TASKS_OUTBOX_GRACE
            # to the publish on commit); on a slow machine the relay may have sent it already.
            figures["outbox rows waiting at the second relay kill"] = outbox_waiting()
            sigkill(relay)
            kills["relay"] += 1
            mark(f"SIGKILL producer after the commit of event {hold_committed}; SIGKILL relay")
            relay = start_relay()
            producer = start_producer()
            # 4. The producer again, at whatever it is doing (mostly sending directly, or pacing).
            wait_until(lambda: produced() >= events * 0.8, STEP_WAIT, 0.01, "the producer to reach 80%")
            sigkill(producer)
            kills["producer"] += 1
            mark(f"SIGKILL producer at event {produced()}")
            producer = start_producer()
            # 5. Workers, mid-stream.
            for fraction, service in ((0.3, "f1"), (0.7, "f3")):
                wait_until(
                    lambda: applied_count("f1") >= events * fraction,
                    STEP_WAIT,
                    0.05,
                    f"f1 to apply {fraction:.0%} (kill {service})",
                )
                kill_worker(service)

        producer.wait(300)
        assert producer.returncode == 0, (tmp_path / "producer.log").read_text()[-3000:]
        mark("producer done")
        wait_until(lambda: outbox_waiting() == 0, 120, 0.2, "the relay to empty the outbox")
        committed = {r[0] for r in dbs.rows("prober", "SELECT event_id FROM event_tasks_outboxevent")}
        ledger = Ledger.read(journal, committed, own_ids=variant.hard)
        assert ledger.confirmed_n == set(range(events)), "the producer did not finish every event"
        if variant.hard:
            assert ledger.never, "the producer was killed inside a transaction: that event must be in the ledger"

        want = {s: ledger.must | ({poison.id} if s != "f2" else set()) for s in SERVICES}

        def applied(s: str) -> list[tuple[str, int]]:
            return [(r[0], r[1]) for r in dbs.rows(s, f"SELECT event_id, n FROM fault_{s}_applied")]

        def missing(s: str) -> str:
            gone = want[s] - {i for i, _ in applied(s)}
            if not gone:
                return f"{s} missing 0"
            # what a stalled service looks like, for a run that fails where nobody can look (CI)
            letters = Counter(r[0] for r in dbs.rows(s, "SELECT reason FROM event_tasks_deadletter"))
            log = plat.worker(s).log().splitlines()
            errors = [line[:300] for line in log if "ERROR" in line or "CRITICAL" in line][-4:]
            return (
                f"{s} missing {len(gone)} {sorted(gone)[:3]} (queue {queue_state(broker, s)}, "
                f"worker running {plat.worker(s).running()}, dead letters {dict(letters)}, "
                f"log lines {len(log)}, last: {log[-1][:200] if log else ''!r}, last errors: {errors})"
            )

        wait_until(
            lambda: all(want[s] <= {i for i, _ in applied(s)} for s in SERVICES),
            float(os.environ.get("FAULT_WAIT", 240 + events * 0.03)),
            0.5,
            lambda: "every service to apply every event: " + "; ".join(missing(s) for s in SERVICES),
        )
        mark("every event applied")
        wait_until(lambda: in_flight(broker) == 0, 120, 0.5, "queues and unacked messages to drain")

        in_doubt_arrived = {s: ledger.check(s, applied(s), want[s]) for s in SERVICES}
        letters = {s: dbs.rows(s, "SELECT event_id, reason FROM event_tasks_deadletter") for s in SERVICES}
        assert letters == {"f1": [], "f2": [(poison.id, "worker_lost")], "f3": [(invalid_id, "invalid_payload")]}
        assert outbox_waiting() == 0

        f1 = {i for i, _ in applied("f1")}
        figures.update(
            {
                "database": variant.database,
                "hard crashes": variant.hard,
                "through outbox": len(committed),
                "worker kills": kills["workers"],
                "broker": (
                    f"{kills['broker restarts']} clean restart"
                    if not variant.hard
                    else "1 SIGKILL (appendfsync always)"
                    if variant.broker == "redis"
                    else "1 clean restart"
                ),
                "producer kills": kills["producer"],
                "relay kills": kills["relay"],
                "transactions killed before commit (never arrived)": len(ledger.never),
                "direct sends refused (sent again)": ledger.refused,
                **(
                    {"direct sends cut off by a kill (sent again, same id)": ledger.resent_same_id}
                    if variant.hard
                    else {
                        "refused that still arrived (f1, new id)": len((ledger.maybe - ledger.must) & f1),
                        "direct sends cut off by a kill": sum(ledger.in_doubt.values()),
                        "of those that arrived (f1)": in_doubt_arrived["f1"],
                    }
                ),
                "duplicates suppressed": sum(
                    dbs.rows(s, "SELECT coalesce(sum(duplicates), 0) FROM event_tasks_processedevent")[0][0]
                    for s in SERVICES
                ),
                "transient failures retried": sum(
                    len((plat.dir / f"failures-{s}.log").read_text().splitlines())
                    for s in SERVICES
                    if (plat.dir / f"failures-{s}.log").exists()
                ),
                "lost": 0,
                "applied twice": 0,
                "dead letters": "poison (worker_lost), invalid (invalid_payload)",
                "seconds": round(time.monotonic() - started, 1),
                "timeline": timeline,
            }
        )
        with capsys.disabled():
            print("\nfault suite: " + json.dumps(figures))
    finally:
        for process in (producer, relay):
            if process.poll() is None:
                process.terminate()
                process.wait(20)
        relay_log.close()
        producer_log.close()
        plat.stop_all()
        dbs.close()
