"""The fault suite: nothing lost, nothing applied twice, while things get killed.

Per broker (a private AOF redis-server; a private RabbitMQ node): 3 consuming services (prefork
workers), EVENT_TASKS_FAULT_EVENTS events (default 3,000) from a producer process, a third of them
through the outbox and its relay process. During the run: two workers are SIGKILLed mid-stream,
the broker is restarted once, ~30% of deliveries fail transiently once, one poison message kills
its worker on every delivery, one invalid message arrives. At the end, for every service, the
applied events equal the expected set exactly, the poison and invalid messages are dead letters
with their reasons, and the outbox is empty.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer

from event_tasks.envelope import SPECVERSION
from event_tasks.message import encode_body, headers
from event_tasks.testing import wait_until
from tests.brokers import RedisServer
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT, Platform, migrate

EVENTS = int(os.environ.get("EVENT_TASKS_FAULT_EVENTS", "3000"))
SERVICES = ("f1", "f2", "f3")
FAULT_ENV = {
    "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.faults.services", "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
    "EVENT_TASKS_VISIBILITY_TIMEOUT": "10", "EVENT_TASKS_HANDLER_TIME_LIMIT": "8", "EVENT_TASKS_RESTORE_INTERVAL": "1",
    "CELERY_WORKER_LOST_WAIT": "1", "EVENT_TASKS_MAX_RETRIES": "6", "EVENT_TASKS_RETRY_BACKOFF": "0.2",
    "EVENT_TASKS_RETRY_BACKOFF_MAX": "1", "EVENT_TASKS_PUBLISH_TIMEOUT": "0.5", "EVENT_TASKS_OUTBOX_GRACE": "1",
}
pytestmark = pytest.mark.timeout(400)


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def applied(plat: Platform, service: str) -> Counter[str]:
    return Counter(r[0] for r in rows(plat.db_path(service), f"SELECT event_id FROM fault_{service}_applied"))


def in_flight(broker, plat: Platform) -> int:
    """Messages still in the queues or taken and not acknowledged."""
    if isinstance(broker, RedisServer):
        client = broker.client()
        return sum(client.llen(f"events.{s}") + client.hlen(f"unacked:events.{s}") for s in SERVICES)
    from tests.brokers import rabbitmqctl

    out = rabbitmqctl("-n", broker.node, "list_queues", "name", "messages", "--quiet", "--no-table-headers")
    return sum(int(line.split()[1]) for line in out.splitlines() if line.split()[:1] and line.split()[0].startswith("events."))


def inject_invalid(url: str) -> str:
    event_id = "invalid-" + os.urandom(6).hex()
    envelope = {"id": event_id, "type": PROBE_CREATED, "source": "prober", "time": "2026-01-01T00:00:00Z",
                "specversion": SPECVERSION, "key": None}
    body, argsrepr = encode_body(envelope, {"n": "not a number"})
    with Connection(url) as conn:
        Producer(conn.channel()).publish(body, exchange=Exchange(""), routing_key="events.f3",
                                         content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                                         headers=headers(PROBE_CREATED, event_id, f"{event_id}:f3", argsrepr))
    return event_id


def test_nothing_lost_nothing_applied_twice(restartable_broker, tmp_path, capsys):
    broker = restartable_broker
    started = time.monotonic()
    kind = "redis" if isinstance(broker, RedisServer) else "rabbitmq"
    plat = Platform(broker.url, tmp_path / "platform", env=FAULT_ENV)
    producer_db = tmp_path / "producer.sqlite3"
    migrate(producer_db, FAULT_ENV)
    producer_env = {**os.environ, **FAULT_ENV, "CELERY_BROKER_URL": broker.url, "DATABASE_URL": f"sqlite:///{producer_db}",
                    "DJANGO_SETTINGS_MODULE": "config.settings.test", "EVENT_TASKS_SERVICE": "prober"}
    for s in SERVICES:
        plat.worker(s, pool="prefork", concurrency=2)
    plat.start(*SERVICES)
    relay_log = open(tmp_path / "relay.log", "wb")
    relay = subprocess.Popen([sys.executable, "manage.py", "events", "relay"], cwd=ROOT, env=producer_env,
                             stdout=relay_log, stderr=subprocess.STDOUT)
    kills = restarts = 0
    try:
        poison = plat.send(PROBE_CREATED, {"n": 0}, key="exit:f2")
        invalid_id = inject_invalid(broker.url)
        sent_file = tmp_path / "sent.txt"
        producer = subprocess.Popen([sys.executable, "-m", "tests.faults.produce", str(EVENTS), str(sent_file), "250"],
                                    cwd=ROOT, env=producer_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def progress() -> int:
            return len(applied(plat, "f1"))

        for fraction, action in ((0.2, "kill f1"), (0.45, "restart broker"), (0.7, "kill f3")):
            wait_until(lambda: progress() >= EVENTS * fraction, 180, 0.05, f"f1 to apply {fraction:.0%} ({action})")
            if action.startswith("kill"):
                worker = plat.worker(action.split()[1])
                worker.kill()
                kills += 1
                worker.start()
            elif isinstance(broker, RedisServer):
                broker.stop()
                broker.start()
                restarts += 1
            else:
                broker.restart()
                restarts += 1

        out, _ = producer.communicate(timeout=240)
        assert producer.returncode == 0, out.decode()[-3000:]
        sent = [line.split() for line in sent_file.read_text().splitlines()]
        expected = {i for i, how in sent if how != "unconfirmed"} | {poison.id}
        unconfirmed = {i for i, how in sent if how == "unconfirmed"}
        assert len(expected) == EVENTS + 1

        outbox_pending = lambda: rows(producer_db, "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL")[0][0]  # noqa: E731
        wait_until(lambda: outbox_pending() == 0, 120, 0.2, "the relay to empty the outbox")
        want = {s: expected - ({poison.id} if s == "f2" else set()) for s in SERVICES}
        wait_until(lambda: all(want[s] <= set(applied(plat, s)) for s in SERVICES), float(os.environ.get("FAULT_WAIT", "240")), 0.5,
                   lambda: "every service to apply every event: " + ", ".join(
                       f"{s} missing {len(want[s] - set(applied(plat, s)))}" for s in SERVICES))
        wait_until(lambda: in_flight(broker, plat) == 0, 120, 0.5, "queues and unacked messages to drain")

        for s in SERVICES:
            counts = applied(plat, s)
            twice = sorted(i for i, c in counts.items() if c > 1)
            extra = set(counts) - want[s] - unconfirmed
            assert twice == [], f"{s} applied {len(twice)} events twice"
            assert set(counts) - unconfirmed == want[s] - unconfirmed and not extra, f"{s}: unexpected {sorted(extra)[:5]}"
        letters = {s: rows(plat.db_path(s), "SELECT event_id, reason FROM event_tasks_deadletter") for s in SERVICES}
        assert letters == {"f1": [], "f2": [(poison.id, "worker_lost")], "f3": [(invalid_id, "invalid_payload")]}
        assert rows(producer_db, "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL")[0][0] == 0

        figures = {
            "broker": kind, "events": EVENTS,
            "through outbox": sum(1 for _, how in sent if how == "outbox"),
            "direct sends refused while broker down (resent)": len(unconfirmed),
            "unconfirmed that still arrived": sum(1 for i in unconfirmed if i in applied(plat, "f1")),
            "worker kills": kills, "broker restarts": restarts,
            "redeliveries counted": sum(rows(plat.db_path(s), "SELECT coalesce(sum(count), 0) FROM event_tasks_redelivery")[0][0]
                                        for s in SERVICES),
            "duplicates suppressed": sum(rows(plat.db_path(s), "SELECT coalesce(sum(duplicates), 0) FROM event_tasks_processedevent")[0][0]
                                         for s in SERVICES),
            "transient failures retried": sum(len((plat.dir / f"failures-{s}.log").read_text().splitlines())
                                              for s in SERVICES if (plat.dir / f"failures-{s}.log").exists()),
            "lost": 0, "applied twice": 0, "dead letters": "poison (worker_lost), invalid (invalid_payload)",
            "seconds": round(time.monotonic() - started, 1),
        }
        with capsys.disabled():
            print("\nfault suite: " + json.dumps(figures))
    finally:
        relay.terminate()
        relay.wait(20)
        relay_log.close()
        plat.stop_all()
