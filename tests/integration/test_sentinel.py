"""Redis behind Sentinel (``sentinel://…;…`` with ``master_name``): producers, the outbox relay,
workers, the start-up check and the operator commands, and a failover in the middle of it all.

A master and two replicas under three sentinels (``tests.redis_sentinel``); the master is
SIGKILLed while events are sent and consumed, a replica is promoted, and the same producer,
relay and worker processes carry on by themselves. With ``EVENT_TASKS_REDIS_WAIT_REPLICAS=1``
every send the producer saw confirmed is on a replica before it returns, so none is lost.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from event_tasks import catalog
from event_tasks.brokers.check import redis_problems
from event_tasks.conf import settings as fabric_settings
from event_tasks.errors import PublishError
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT, Platform
from tests.redis_sentinel import RedisSentinelSet

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]  # `make test-cluster` (CI runs it after `make test`)

SERVICES = ("alpha", "beta")  # both consume PROBE_CREATED


@pytest.fixture
def sentinels() -> Iterator[RedisSentinelSet]:
    cluster = RedisSentinelSet(replicas=2, sentinels=3)
    cluster.start()
    yield cluster
    cluster.cleanup()


def sentinel_platform(cluster: RedisSentinelSet, workdir: Path, template_db: Path, name: str) -> Platform:
    return Platform(
        cluster.url,
        workdir / name,
        env={
            "CELERY_BROKER_MASTER_NAME": cluster.master_name,
            "EVENT_TASKS_REDIS_WAIT_REPLICAS": "1",
            "EVENT_TASKS_REQUIRE_DURABLE_BROKER": "1",  # the check reaches the master through the sentinels
            # a delivery whose ack died with the old master comes back soon (a duplicate, suppressed)
            "EVENT_TASKS_VISIBILITY_TIMEOUT": "4",
            "EVENT_TASKS_RESTORE_INTERVAL": "1",
            "EVENT_TASKS_HANDLER_TIME_LIMIT": "3",
            "EVENT_TASKS_PUBLISH_TIMEOUT": "0.5",
            "EVENT_TASKS_OUTBOX_GRACE": "0.2",
        },
        template_db=template_db,
    )


def producer(cluster: RedisSentinelSet, wait_replicas: int = 1) -> Publisher:
    """The test process's producer on the sentinel URL, waiting for ``wait_replicas`` per send."""
    catalog.load("tests.fabric.schemas")
    app = Celery("producer-sentinel", broker=cluster.url, set_as_current=False)
    app.conf.broker_transport_options = cluster.transport_options
    conf = dataclasses.replace(fabric_settings(), redis_wait_replicas=wait_replicas, publish_timeout=0.5)
    return Publisher(app, "prober", conf)


class Sender:
    """Sends each event until the broker confirms it (the same id each time: a copy that did get
    out before a failure is a duplicate the consumers suppress)."""

    def __init__(self, publisher: Publisher, prefix: str = "sentinel") -> None:
        self.publisher = publisher
        self.prefix = prefix
        self.confirmed: list[str] = []
        self.refused: list[PublishError] = []

    def send(self, n: int, timeout: float = 30.0) -> str:
        event_id = f"{self.prefix}-{n}"

        def sent() -> bool:
            try:
                self.publisher.send(PROBE_CREATED, {"n": n}, id=event_id)
            except PublishError as exc:
                self.refused.append(exc)
                return False
            return True

        wait_until(sent, timeout, 0.05, lambda: f"event {n} to be confirmed; last refusal: {self.refused[-1:]}")
        self.confirmed.append(event_id)
        return event_id


def outbox_rows(plat: Platform, first: int, count: int) -> list[str]:
    """Commit ``count`` outbox rows as the producer service and die before their on-commit publish
    (the first on-commit callback exits): only the relay can send them."""
    code = (
        "import os\nfrom django.db import transaction\nfrom event_tasks import send_event\nids = []\n"
        "with transaction.atomic():\n"
        "    transaction.on_commit(lambda: (print(' '.join(ids), flush=True), os._exit(0)))\n"
        f"    for n in range({first}, {first + count}):\n"
        f"        ids.append(send_event({PROBE_CREATED!r}, {{'n': n}}).id)\n"
    )
    return plat.manage("prober", "shell", "-c", code).strip().splitlines()[-1].split()  # after the shell's banner


class RelayProcess:
    """``manage.py events relay`` of the producer service, until :meth:`stop`."""

    def __init__(self, plat: Platform) -> None:
        plat.worker("prober")  # its database, migrated (no worker starts)
        self.log_path = plat.dir / "relay.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "events", "relay"],
                cwd=ROOT,
                env={**os.environ, **plat.worker_env("prober")},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def applied(plat: Platform, service: str) -> Counter[str]:
    """How many times ``service`` applied each event, from its record file read once (a last line
    the worker is still writing is left for the next read)."""
    path = plat.dir / f"{service}.jsonl"
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            counts[json.loads(line)["id"]] += 1
        except json.JSONDecodeError:
            continue
    return counts


def wait_applied(
    plat: Platform, event_ids: list[str], timeout: float, cluster: RedisSentinelSet, relay: RelayProcess
) -> None:
    def missing() -> dict[str, list[str]]:
        counts = {s: applied(plat, s) for s in SERVICES}
        return {s: [e for e in event_ids if not counts[s][e]] for s in SERVICES}

    wait_until(
        lambda: not any(missing().values()),
        timeout,
        0.2,
        lambda: (
            f"every event applied; missing per service: {missing()}\n{cluster.describe()}\n"
            + "\n".join(f"--- {s}:\n{plat.workers[s].log()[-3000:]}" for s in SERVICES)
            + f"\n--- relay:\n{relay.log()[-3000:]}"
        ),
    )


def test_a_failover_loses_no_confirmed_event_and_nobody_restarts(sentinels, workdir, probe_template_db):
    cluster = sentinels
    plat = sentinel_platform(cluster, workdir, probe_template_db, "sentinel-failover")
    sender = Sender(producer(cluster))
    unwaited = Sender(producer(cluster, wait_replicas=0), "unwaited")  # the send path without WAIT
    relay = RelayProcess(plat)
    try:
        plat.start(*SERVICES)
        workers = {s: plat.workers[s].pid for s in SERVICES}
        # Delivery through the sentinels: direct sends and outbox rows the relay publishes.
        before = [sender.send(n) for n in range(20)] + [unwaited.send(n) for n in range(5)]
        outboxed = outbox_rows(plat, 10_000, 10)
        wait_applied(plat, before + outboxed, 60, cluster, relay)

        # The master dies while events are sent (and consumed); the sends go on.
        for n in range(20, 120):
            sender.send(n)
        old = cluster.kill_master()
        killed_at = time.monotonic()
        for n in range(120, 320):
            sender.send(n)
        new = cluster.wait_for_failover(old)
        recovered = time.monotonic() - killed_at
        outboxed += outbox_rows(plat, 20_000, 10)  # after the failover: the same relay sends them
        for n in range(320, 340):
            sender.send(n)
            unwaited.send(n)  # sent after the failover: arrives whether or not it waits

        everything = sender.confirmed + unwaited.confirmed + outboxed
        wait_applied(plat, everything, 90, cluster, relay)
        # 0 lost; duplicates (acks lost with the old master, resends) suppressed: each applied once
        for s in SERVICES:
            counts = applied(plat, s)
            assert {e: counts[e] for e in everything if counts[e] != 1} == {}, s
        assert len(set(sender.confirmed)) == 340
        # nobody was restarted: the same worker and relay processes reconnected by themselves
        assert {s: plat.workers[s].pid for s in SERVICES} == workers
        assert all(plat.workers[s].running and plat.workers[s].starts == 1 for s in SERVICES)
        assert relay.running, relay.log()[-3000:]
        # (on a loaded machine the sentinels may fail over once more: any master but the killed one)
        assert new != old and cluster.master_index() != old, cluster.describe()
        # the killed master comes back as a replica of the new one
        cluster.start_server(old)
        assert cluster.roles()[old] == "slave"
        print(
            f"\nsentinel failover: master {old} -> {new} in {recovered:.1f}s, {len(sender.confirmed)} direct sends "
            f"({len(sender.refused)} refused during the failover, sent again) and {len(unwaited.confirmed)} "
            f"without WAIT, {len(outboxed)} via the relay, "
            "0 lost, 0 applied twice"
        )
    finally:
        relay.stop()
        plat.stop_all()


def test_operator_commands_and_the_persistence_check_work_through_sentinel(sentinels, workdir, probe_template_db):
    cluster = sentinels
    plat = sentinel_platform(cluster, workdir, probe_template_db, "sentinel-ops")
    try:
        assert redis_problems(cluster.url, cluster.transport_options) == []  # the master, found by the sentinels
        declared = plat.tooling("events", "declare", "--service", "alpha", "--service", "beta").stdout
        assert "declared events.alpha" in declared and "declared events.beta" in declared
        shown = json.loads(plat.tooling("events", "topology", "--json").stdout)
        assert {(r["queue"], r["routing_key"]) for r in shown} >= {("events.alpha", PROBE_CREATED)}
        verify = plat.tooling(
            "events", "topology", "verify", "--json", "--service", "alpha", "--ignore-consumers", check=False
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr

        tail = subprocess.Popen(
            [sys.executable, "manage.py", "events", "tail", "--type", PROBE_CREATED, "--json", "--count", "1"],
            cwd=ROOT,
            env={**os.environ, **plat.worker_env("tooling"), "DATABASE_URL": f"sqlite:///{plat.dir / 'tail.sqlite3'}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # `events send` as the producer service (its publisher on the sentinel URL), until the tail listens
            plat.worker("prober")
            sent: list[str] = []

            def tail_got_one() -> bool:
                if tail.poll() is not None:
                    return True
                out = plat.manage("prober", "events", "send", PROBE_CREATED, "--data", '{"n": 1}')
                sent.append(out)
                return tail.poll() is not None

            wait_until(tail_got_one, 60, 0.5, "the tail to print an event")
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.communicate()
        assert tail.returncode == 0, err
        line = json.loads(out.splitlines()[0])
        assert line["envelope"]["type"] == PROBE_CREATED and line["envelope"]["source"] == "prober"
        event_id = line["envelope"]["id"]

        status = json.loads(plat.tooling("events", "status", "--json", "--no-workers", "--service", "beta").stdout)
        assert status["broker"] == "redis", status
        (beta,) = status["services"]
        assert beta["exists"] and beta["depth"] == len(sent), beta  # beta has no worker: its copies wait
        traced = json.loads(plat.tooling("events", "trace", event_id, "--json", databases=("beta",)).stdout)
        assert traced["broker"] == "redis" and traced["type"] == PROBE_CREATED, traced
        rows = {r["service"]: r for r in traced["services"]}
        assert rows["beta"]["queued"] == "waiting" and rows["beta"]["bound_now"] == [PROBE_CREATED], traced
    finally:
        plat.stop_all()


def test_the_persistence_check_reads_the_master_behind_sentinel(workdir):
    cluster = RedisSentinelSet(replicas=1, sentinels=2, appendonly=False)
    try:
        cluster.start()
        problems = redis_problems(cluster.url, cluster.transport_options)
        assert problems and problems[0].startswith("appendonly is 'no'"), problems
    finally:
        cluster.cleanup()
