"""Outgrowing one machine: broker nodes killed mid-run on a real cluster, nothing lost.

Two engines, each started by the test on loopback (own ports and directories, stopped by PID):

* ``rabbitmq-cluster`` — 3 RabbitMQ nodes (``tests/rabbitmq_cluster.py``), quorum queues
  (``EVENT_TASKS_QUEUE_TYPE = "quorum"``), every process given the failover list, each worker its
  own node first. SIGKILLed mid-run: the node that leads ``events.f2`` (while the producer sends),
  and later the node ``events.f1``'s worker is connected to; each is started again once publishing
  and consuming have resumed without it.
* ``redis-sentinel`` — a master, two replicas and three sentinels (``tests/redis_sentinel.py``),
  every process on ``sentinel://…`` with ``EVENT_TASKS_REDIS_WAIT_REPLICAS = 1``; the master is
  SIGKILLed mid-run, then (after the failover, with the old one back as a replica) the new master,
  which every worker is connected to.
* ``redis-sentinel-nowait`` (``make faults-long``: marker ``long``) — the
  same without the replica wait: Redis replicates asynchronously, so sends the old master had
  confirmed can be gone after the failover. The run reports how many were lost instead of failing.

Each run: 3 services on prefork workers (SQLite databases), EVENT_TASKS_FAULT_EVENTS events
(default 3,000) from the fault suite's producer (``tests/faults/produce.py``: a third through
the outbox and its relay, direct sends under the producer's own ids, resent on ``PublishError``),
~30% of deliveries failing transiently once. At the end every service applied every confirmed
event exactly once (none lost, none twice), no dead letters, the outbox is empty, and the queues
are drained. The figures line says how long publishing and consuming paused after each kill
(kill → the producer's next confirmed send; kill → the next event each service applied).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from event_tasks.testing import wait_until
from tests.faults.journal import Ledger
from tests.faults.test_fault_suite import FAULT_ENV, SERVICES, Databases
from tests.integration.fabric import ROOT, Platform, migrate

EVENTS = int(os.environ.get("EVENT_TASKS_FAULT_EVENTS") or 3000)
RATE = 60  # sends per second: publishing lasts ~50 s at 3,000, so both kills land while it runs
STEP_WAIT = 180 + EVENTS * 0.03
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(600 + EVENTS * 0.12),
]  # `make test-cluster` (CI runs it after `make test`)


@dataclass(frozen=True)
class Engine:
    name: str  # rabbitmq-cluster | redis-sentinel | redis-sentinel-nowait

    @property
    def waits(self) -> bool:
        return self.name == "redis-sentinel"


ENGINES = [
    pytest.param(Engine("rabbitmq-cluster"), id="rabbitmq-cluster"),
    pytest.param(Engine("redis-sentinel"), id="redis-sentinel"),
    pytest.param(Engine("redis-sentinel-nowait"), id="redis-sentinel-nowait", marks=pytest.mark.long),
]


class RabbitSide:
    """The cluster and what the scenario asks of it."""

    def __init__(self) -> None:
        from tests.rabbitmq_cluster import RabbitMQCluster

        self.cluster = RabbitMQCluster(3).start()
        self.env = {"EVENT_TASKS_QUEUE_TYPE": "quorum"}

    def url_from(self, first: int) -> str:
        """The failover list starting with node ``first`` (spreads the clients over the nodes)."""
        urls = self.cluster.urls
        return ";".join(urls[first:] + urls[:first])

    def first_victim(self) -> tuple[int, str]:
        node = self.cluster.leader_of("events.f2")
        return node, f"node {node} (leads events.f2)"

    def second_victim(self) -> tuple[int, str]:
        node = self.cluster.consumer_nodes("events.f1")[0]
        return node, f"node {node} (events.f1's worker is connected to it)"

    def kill(self, node: int) -> int:
        self.cluster.kill(node)
        return node

    def bring_back(self, node: int) -> None:
        self.cluster.start_node(node)

    def in_flight(self) -> int:
        return sum(
            int(info.get("messages_ready", 0)) + int(info.get("messages_unacknowledged", 0))
            for info in (self.cluster.queue_info(f"events.{s}") for s in SERVICES)
        )

    def describe(self) -> str:
        """What other queues still hold: a retry waiting in a delay level, a message parked past its limit."""
        try:
            infos = self.cluster.queue_infos().items()
            held = {name: (info["messages"], info["leader"]) for name, info in infos if info["messages"]}
        except Exception as exc:
            return f"other queues unknown ({exc!r})"
        return f"queues holding messages (count, leader): {held}"

    def state(self, service: str) -> str:
        try:
            return str(self.cluster.queue_info(f"events.{service}"))
        except Exception as exc:
            return f"unknown ({exc!r})"

    def cleanup(self) -> None:
        self.cluster.cleanup()


class RedisSide:
    """The Sentinel set and what the scenario asks of it."""

    def __init__(self, waits: bool) -> None:
        from tests.redis_sentinel import RedisSentinelSet

        self.set = RedisSentinelSet(replicas=2, sentinels=3)
        self.set.start()
        self.env = {
            "CELERY_BROKER_MASTER_NAME": self.set.master_name,
            "EVENT_TASKS_REDIS_WAIT_REPLICAS": "1" if waits else "0",
        }

    def url_from(self, first: int) -> str:
        return self.set.url

    def first_victim(self) -> tuple[int, str]:
        return -1, "the master"

    def second_victim(self) -> tuple[int, str]:
        return -1, "the new master (every worker's)"

    def kill(self, node: int) -> int:
        old = self.set.kill_master()
        self.set.wait_for_failover(old, 60)
        return old

    def bring_back(self, node: int) -> None:
        self.set.start_server(node)

    def describe(self) -> str:
        return self.set.describe()

    def in_flight(self) -> int:
        client = self.set.master().client()
        return sum(client.llen(f"events.{s}") + client.hlen(f"unacked:events.{s}") for s in SERVICES)

    def state(self, service: str) -> str:
        try:
            client = self.set.master().client()
            return f"{client.llen(f'events.{service}')} waiting, {client.hlen(f'unacked:events.{service}')} unacked"
        except Exception as exc:
            return f"unknown ({exc!r})"

    def cleanup(self) -> None:
        self.set.cleanup()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest):
    side: RabbitSide | RedisSide = (
        RabbitSide() if request.param.name.startswith("rabbitmq") else RedisSide(request.param.waits)
    )
    try:
        yield request.param, side
    finally:
        side.cleanup()


def test_broker_nodes_killed_mid_run_lose_nothing(engine, tmp_path: Path, capsys):
    kind, side = engine
    started = time.monotonic()
    env = {**FAULT_ENV, **side.env}
    plat = Platform(side.url_from(0), tmp_path / "platform", env=env)
    producer_path = tmp_path / "producer.sqlite3"
    migrate(producer_path, env)
    dbs = Databases({"prober": producer_path, **{s: plat.db_path(s) for s in SERVICES}})
    base_env = {
        **os.environ,
        **env,
        "DATABASE_URL": f"sqlite:///{producer_path}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EVENT_TASKS_SERVICE": "prober",
        "FAULT_ID_PREFIX": "p" + os.urandom(4).hex(),  # a send resent after PublishError is the same event
    }
    for i, s in enumerate(SERVICES):
        plat.worker(s, env={"CELERY_BROKER_URL": side.url_from(i)}, pool="prefork", concurrency=2)
    plat.start(*SERVICES)

    journal = tmp_path / "journal.txt"
    logs = {name: open(tmp_path / f"{name}.log", "ab") for name in ("producer", "relay")}

    def spawn(name: str, args: list[str], first: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**base_env, "CELERY_BROKER_URL": side.url_from(first)},
            stdout=logs[name],
            stderr=subprocess.STDOUT,
        )

    def confirmed() -> int:
        text = journal.read_text() if journal.exists() else ""
        return sum(1 for line in text.splitlines() if line.startswith(("direct ", "outbox ")))

    def applied_count(s: str) -> int:
        return dbs.rows(s, f"SELECT count(*) FROM fault_{s}_applied")[0][0]

    def outbox_waiting() -> int:
        return dbs.rows("prober", "SELECT count(*) FROM event_tasks_outboxevent WHERE sent_at IS NULL")[0][0]

    relay = spawn("relay", ["manage.py", "events", "relay"], 1)
    producer = spawn("producer", ["-m", "tests.faults.produce", str(EVENTS), str(journal), str(RATE)], 0)
    figures: dict[str, Any] = {"engine": kind.name, "events": EVENTS}
    timeline: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:.1f}s {what}")

    def kill_and_measure(label: str, victim: Callable[[], tuple[int, str]]) -> None:
        """Kill, then watch every counter in one loop: each pause ends when its counter first moves."""
        node, what = victim()
        counters: dict[str, Callable[[], int]] = {s: (lambda s=s: applied_count(s)) for s in SERVICES}
        if producer.poll() is None:
            counters["publish"] = confirmed
        before = {name: count() for name, count in counters.items()}
        mark(f"SIGKILL {what}")
        killed_at = time.monotonic()
        node = side.kill(node)
        mark(f"{what}: node {node} seen down" + (", a replica promoted" if isinstance(side, RedisSide) else ""))
        pauses: dict[str, float] = {}

        def all_moved() -> bool:
            for name, count in counters.items():
                if name not in pauses and count() > before[name]:
                    pauses[name] = round(time.monotonic() - killed_at, 2)
            return len(pauses) == len(counters)

        wait_until(all_moved, STEP_WAIT, 0.02, lambda: f"publishing and consuming to resume (resumed: {pauses})")
        figures[f"pause after {label} (s)"] = pauses
        side.bring_back(node)
        mark(f"{what} back")

    try:
        for fraction, label, victim in (
            (0.3, "kill 1", side.first_victim),
            (0.65, "kill 2", side.second_victim),
        ):
            wait_until(
                lambda: confirmed() >= EVENTS * fraction, STEP_WAIT, 0.05, f"the producer to send {fraction:.0%}"
            )
            kill_and_measure(label, victim)

        producer.wait(300)
        assert producer.returncode == 0, (tmp_path / "producer.log").read_text()[-3000:]
        mark("producer done")
        wait_until(lambda: outbox_waiting() == 0, 120, 0.2, "the relay to empty the outbox")
        committed = {r[0] for r in dbs.rows("prober", "SELECT event_id FROM event_tasks_outboxevent")}
        ledger = Ledger.read(journal, committed, own_ids=True)
        assert ledger.confirmed_n == set(range(EVENTS)), "the producer did not finish every event"

        def applied(s: str) -> list[tuple[str, int]]:
            return [(r[0], r[1]) for r in dbs.rows(s, f"SELECT event_id, n FROM fault_{s}_applied")]

        def missing(s: str) -> str:
            gone = ledger.must - {i for i, _ in applied(s)}
            log = plat.worker(s).log().splitlines()
            errors = [line[:300] for line in log if "ERROR" in line or "CRITICAL" in line][-4:]
            return (
                f"{s} missing {len(gone)} {sorted(gone)[:3]} (queue {side.state(s)}, "
                f"worker running {plat.worker(s).running}, last errors: {errors})"
            )

        def all_applied() -> bool:
            return all(ledger.must <= {i for i, _ in applied(s)} for s in SERVICES)

        if kind.name == "redis-sentinel-nowait":
            # Without the replica wait, what the old master confirmed and had not replicated is gone.
            # Wait until nothing is in flight any more, then count.
            wait_until(lambda: all_applied() or side.in_flight() == 0, 240 + EVENTS * 0.03, 0.5, "queues to drain")
            wait_until(lambda: side.in_flight() == 0, 120, 0.5, "queues and unacked messages to drain")
            lost = {s: len(ledger.must - {i for i, _ in applied(s)}) for s in SERVICES}
            figures["lost without the replica wait"] = lost
            for s in SERVICES:
                counts = [i for i, _ in applied(s)]
                assert len(counts) == len(set(counts)), f"{s} applied an event twice"
        else:
            wait_until(
                all_applied,
                240 + EVENTS * 0.03,
                0.5,
                lambda: (
                    "every service to apply every event: "
                    + "; ".join(missing(s) for s in SERVICES)
                    + "\n"
                    + side.describe()
                ),
            )
            mark("every event applied")
            wait_until(lambda: side.in_flight() == 0, 120, 0.5, "queues and unacked messages to drain")
            for s in SERVICES:
                ledger.check(s, applied(s), ledger.must)
            figures.update({"lost": 0, "applied twice": 0})
        letters = {s: dbs.rows(s, "SELECT event_id, reason FROM event_tasks_deadletter") for s in SERVICES}
        assert letters == {s: [] for s in SERVICES}
        assert outbox_waiting() == 0
        figures.update(
            {
                "through outbox": len(committed),
                "direct sends refused (sent again, same id)": ledger.refused,
                "duplicates suppressed": sum(
                    dbs.rows(s, "SELECT coalesce(sum(duplicates), 0) FROM event_tasks_processedevent")[0][0]
                    for s in SERVICES
                ),
                "transient failures retried": sum(
                    len((plat.dir / f"failures-{s}.log").read_text().splitlines())
                    for s in SERVICES
                    if (plat.dir / f"failures-{s}.log").exists()
                ),
                "seconds": round(time.monotonic() - started, 1),
                "timeline": timeline,
            }
        )
        with capsys.disabled():
            print("\ncluster faults: " + json.dumps(figures))
    finally:
        for process in (producer, relay):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
        for fh in logs.values():
            fh.close()
        plat.stop_all()
        dbs.close()
