"""``events queues migrate``: a service's queue moves from classic to quorum and back on a real
RabbitMQ while a producer keeps sending, and every message is in the new queue exactly once.

Each test has a vhost of its own on the machine's RabbitMQ (which has no management API: the
subscriptions come from the service's handlers), except the last, on a private node with the
management API (the subscriptions come from the broker's bindings). Exactly once is read twice:
the queue's depth against what was sent (a broker count), then alpha's handler, which runs here
without duplicate suppression (``PROBE_DEDUP=0``), so a second copy of an event would run it twice.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from amqp import Message
from kombu import Connection, Producer

from event_tasks.brokers.message import headers
from event_tasks.testing import ServiceWorker, wait_until
from tests.brokers import rabbitmq_vhost, rabbitmqctl
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED
from tests.integration.fabric import ROOT, Platform

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]  # `make test-cluster` (CI runs it after `make test`)

QUEUE, TEMPORARY, PARKED = "events.alpha", "events.alpha.migrating", "events.alpha.parked"
WAITING = 150  # events waiting in the queue when the migration starts
MIGRATE = ("queues", "migrate", "--service", "alpha")


def events(plat: Platform, *args: str, queue_type: str = "classic") -> subprocess.CompletedProcess[str]:
    """``manage.py events ...`` as alpha (its handlers, its database) with ``EVENT_TASKS_QUEUE_TYPE``."""
    env = {**os.environ, **plat.worker_env("alpha"), "EVENT_TASKS_QUEUE_TYPE": queue_type}
    return subprocess.run(
        [sys.executable, "manage.py", "events", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


STARTED: list[ServiceWorker] = []


def worker(plat: Platform, queue_type: str) -> ServiceWorker:
    """alpha's worker with ``EVENT_TASKS_QUEUE_TYPE = queue_type`` (stopped after the test)."""
    plat.worker("alpha")  # alpha's database, migrated
    env = {**plat.worker_env("alpha"), "EVENT_TASKS_QUEUE_TYPE": queue_type}
    STARTED.append(ServiceWorker("alpha", env=env, log_dir=str(plat.dir)))
    return STARTED[-1]


@pytest.fixture(autouse=True)
def _stop_workers() -> Iterator[None]:
    yield
    while STARTED:
        STARTED.pop().stop()


def depth(url: str, queue: str) -> int | None:
    """Messages ready in ``queue`` as RabbitMQ counts them now (None: no such queue)."""
    with Connection(url) as conn, conn.channel() as channel:
        try:
            return channel.queue_declare(queue, passive=True).message_count
        except conn.channel_errors:
            return None


def broker_queues(url: str, node: str | None = None) -> dict[str, tuple[str, str]]:
    """``{queue: (type, arguments)}`` as ``rabbitmqctl`` lists them (not the code under test)."""
    vhost = url.rsplit("/", 1)[1] or "/"
    out = rabbitmqctl(
        *(("-n", node) if node else ()), "list_queues", "-p", vhost, "name", "type", "arguments", "--quiet"
    )
    rows = (line.split("\t") for line in out.splitlines())
    return {row[0]: (row[1], row[2]) for row in rows if len(row) == 3 and row[0] != "name"}


def bindings_of(url: str, queue: str, node: str | None = None) -> set[tuple[str, str]]:
    vhost = url.rsplit("/", 1)[1] or "/"
    out = rabbitmqctl(
        *(("-n", node) if node else ()),
        "list_bindings",
        "-p",
        vhost,
        "source_name",
        "destination_name",
        "routing_key",
        "--quiet",
    )
    rows = (line.split("\t") for line in out.splitlines())
    return {(row[0], row[2]) for row in rows if len(row) == 3 and row[1] == queue and row[0]}


def assert_quorum(url: str, node: str | None = None) -> None:
    found = broker_queues(url, node)
    kind, arguments = found[QUEUE]
    assert kind == "quorum", found
    for argument in (
        '{"x-delivery-limit",100}',
        '{"x-dead-letter-routing-key","events.alpha.parked"}',
        '{"x-dead-letter-strategy","at-least-once"}',
        '{"x-overflow","reject-publish"}',
    ):
        assert argument in arguments, arguments
    assert found[PARKED][0] == "quorum" and TEMPORARY not in found, found


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr


class Sender(threading.Thread):
    """A producer publishing alpha's event type to ``events`` all along, with publisher confirms
    and ``mandatory``: a send that found no queue comes back (``returned``), as the fabric counts it."""

    def __init__(self, plat: Platform, url: str, event_type: str = PROBE_CREATED) -> None:
        super().__init__(daemon=True)
        self.publisher = plat.producer()
        self.connection = Connection(url, transport_options={"confirm_publish": True})
        self.event_type = event_type
        self.sent: list[str] = []
        self.returned: list[str] = []
        self.errors: list[BaseException] = []
        self.halt = threading.Event()
        self._came_back = 0

    def _on_return(self, *_: object) -> None:
        self._came_back += 1

    def run(self) -> None:
        try:
            producer = Producer(self.connection, on_return=self._on_return)
            n = 0
            while not self.halt.is_set():
                _, prepared = self.publisher.prepare(self.event_type, {"n": 100_000 + n})
                before = self._came_back
                producer.publish(
                    prepared.body,
                    exchange="events",
                    routing_key=self.event_type,
                    mandatory=True,
                    headers=headers(self.event_type, prepared.event_id, prepared.event_id, prepared.argsrepr),
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    correlation_id=prepared.event_id,
                )
                (self.returned if self._came_back > before else self.sent).append(prepared.event_id)
                n += 1
                self.halt.wait(0.01)  # ~100 a second: enough to be sending at every step, few enough to consume
        except BaseException as exc:  # the test asserts there was none
            self.errors.append(exc)
        finally:
            self.connection.release()

    def __enter__(self) -> Sender:
        self.start()
        wait_until(lambda: len(self.sent) >= 20 or self.errors, 30, message="the producer to send")
        return self

    def __exit__(self, *exc: object) -> None:
        sent = len(self.sent)
        wait_until(lambda: len(self.sent) >= sent + 20 or self.errors, 30, message="the producer to go on")
        self.halt.set()
        self.join(30)


def seen_once(plat: Platform, consumer: ServiceWorker, expected: list[str], retried: str) -> None:
    """Every event of ``expected`` ran alpha's handler exactly once, ``retried`` twice (its failed
    attempt before the migration, and its retry), and no other event ran it."""
    consumer.start()
    wanted = set(expected)

    def done() -> bool:
        counts = collections.Counter(r["id"] for r in plat.seen("alpha"))
        return wanted <= set(counts) and counts[retried] >= 2

    wait_until(done, 120, 0.2, lambda: f"alpha to handle all {len(wanted)}: {consumer.output()[-2000:]}")
    consumer.stop()
    counts = collections.Counter(r["id"] for r in plat.seen("alpha"))
    assert set(counts) == wanted | {retried}
    assert [i for i, n in counts.items() if n != 1 and i != retried] == [] and counts[retried] == 2


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


def platform(url: str, workdir: Path, template: Path, name: str, **env: str) -> Platform:
    return Platform(url, workdir / name, env={"PROBE_DEDUP": "0", **env}, template_db=template)


def test_classic_to_quorum_while_a_producer_sends(vhost, workdir, probe_template_db):
    # Retries back off 4-8 s: the failed event's retry waits in the classic worker when it stops.
    plat = platform(
        vhost,
        workdir,
        probe_template_db,
        "migrate-quorum",
        EVENT_TASKS_RETRY_BACKOFF="8",
        EVENT_TASKS_RETRY_BACKOFF_MAX="8",
    )
    classic = worker(plat, "classic").start()
    try:
        failing = plat.send(PROBE_CREATED, {"n": 99_999}, key="fail:alpha:1")
        wait_until(lambda: "retrying in" in classic.output(), 60, message=lambda: classic.output()[-2000:])
        refused = one_line(events(plat, *MIGRATE, "--to", "quorum"))
        assert f"cannot migrate {QUEUE}: {QUEUE} has 1 consumer(s): stop alpha's workers first" in refused
    finally:
        classic.stop()
    waiting = [plat.send(PROBE_CREATED, {"n": i}).id for i in range(WAITING)]
    assert depth(vhost, QUEUE) == WAITING + 1  # and the retry, back from the stopped worker

    before = events(plat, "topology", "verify", "--service", "alpha", "--ignore-consumers", queue_type="quorum")
    assert before.returncode == 2, before.stdout  # the shared node has no management API: queues alone
    assert f"queue_type       {QUEUE}  (classic on the broker, quorum declared" in before.stderr
    assert "`events queues migrate --service alpha --to quorum`" in before.stderr
    says = "is a classic queue, but EVENT_TASKS_QUEUE_TYPE declares it quorum"
    assert says in one_line(events(plat, "declare", queue_type="quorum"))
    refusing = worker(plat, "quorum").start(wait=False)
    wait_until(lambda: not refusing.running, 90, message=lambda: f"the quorum worker to exit: {refusing.output()}")
    assert refusing.process is not None and refusing.process.returncode != 0
    assert says in refusing.output() and "--to quorum`" in refusing.output()
    assert "Traceback" not in refusing.output() and "PRECONDITION_FAILED" not in refusing.output()
    assert depth(vhost, QUEUE) == WAITING + 1  # it took nothing

    with Sender(plat, vhost) as sender:
        migrated = events(plat, *MIGRATE, "--to", "quorum")
    assert migrated.returncode == 0, migrated.stderr
    assert sender.errors == [] and sender.returned == [], (sender.errors, len(sender.returned))
    for step in (f"unbound {QUEUE}: new events go to {TEMPORARY} only", f"deleted {QUEUE}", f"deleted {TEMPORARY}"):
        assert step in migrated.stdout, migrated.stdout
    assert "EVENT_TASKS_QUEUE_TYPE = 'quorum'" in migrated.stdout
    assert_quorum(vhost)
    assert depth(vhost, QUEUE) == WAITING + 1 + len(sender.sent)
    delayed = ("celery_delayed_delivery", "*." * 28 + QUEUE)  # its retries come back by this key
    assert {("events", PROBE_CREATED), delayed} <= bindings_of(vhost, QUEUE)

    after = events(plat, "topology", "verify", "--service", "alpha", "--ignore-consumers", queue_type="quorum")
    assert after.returncode == 2 and "DRIFT" not in after.stderr and "queue_type" not in after.stderr, after.stderr
    assert "nothing to move" in events(plat, *MIGRATE, "--to", "quorum", queue_type="quorum").stdout
    seen_once(plat, worker(plat, "quorum"), waiting + sender.sent, failing.id)


def test_quorum_back_to_classic_with_a_retry_in_the_delay_levels(vhost, workdir, probe_template_db):
    # Retries back off 10-20 s, held by RabbitMQ's delay levels: the failed event's retry is there
    # while the migration runs, and comes back by the service queue's key after it.
    plat = platform(
        vhost,
        workdir,
        probe_template_db,
        "migrate-classic",
        EVENT_TASKS_RETRY_BACKOFF="20",
        EVENT_TASKS_RETRY_BACKOFF_MAX="20",
    )
    quorum = worker(plat, "quorum").start()
    try:
        failing = plat.send(PROBE_CREATED, {"n": 99_999}, key="fail:alpha:1")
        wait_until(lambda: "held by RabbitMQ's delay levels" in quorum.output(), 60, message=lambda: quorum.output())
    finally:
        quorum.stop()
    waiting = [plat.send(PROBE_CREATED, {"n": i}).id for i in range(WAITING)]
    assert depth(vhost, QUEUE) == WAITING  # the retry waits in the delay levels

    before = events(plat, "topology", "verify", "--service", "alpha", "--ignore-consumers")
    assert f"queue_type       {QUEUE}  (quorum on the broker, classic declared" in before.stderr, before.stderr
    assert "is a quorum queue, but EVENT_TASKS_QUEUE_TYPE declares it classic" in one_line(events(plat, "declare"))

    with Sender(plat, vhost) as sender:
        migrated = events(plat, *MIGRATE, "--to", "classic")
    assert migrated.returncode == 0, migrated.stderr
    assert sender.errors == [] and sender.returned == [], (sender.errors, len(sender.returned))
    found = broker_queues(vhost)
    assert found[QUEUE][0] == "classic" and TEMPORARY not in found and PARKED not in found, found
    assert "x-delivery-limit" not in found[QUEUE][1]
    expected = WAITING + len(sender.sent) + 1
    wait_until(lambda: depth(vhost, QUEUE) == expected, 60, message=lambda: f"{expected} in {QUEUE}")

    after = events(plat, "topology", "verify", "--service", "alpha", "--ignore-consumers")
    assert after.returncode == 2 and "DRIFT" not in after.stderr, after.stderr
    seen_once(plat, worker(plat, "classic"), waiting + sender.sent, failing.id)


def test_an_interrupted_migration_is_picked_up_and_each_message_kept_once(vhost, workdir, probe_template_db):
    """The state a run killed during step 3 leaves: the temporary queue bound and holding what was
    sent since, the service queue unbound, an event sent while both were bound in both, the marker
    of the killed run in the service queue."""
    plat = platform(vhost, workdir, probe_template_db, "migrate-resume")
    assert events(plat, "declare").returncode == 0
    first = [plat.send(PROBE_CREATED, {"n": i}).id for i in range(10)]
    with Connection(vhost) as conn, conn.channel() as channel:
        channel.queue_declare(TEMPORARY, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(TEMPORARY, "events", PROBE_CREATED)
        twin = plat.send(PROBE_CREATED, {"n": 10}).id  # in both queues
        channel.queue_unbind(QUEUE, "events", PROBE_CREATED)
        later = [plat.send(PROBE_CREATED, {"n": 11 + i}).id for i in range(5)]
        marker = Message(b"", delivery_mode=2, application_headers={"event_tasks_migration_marker": "killed"})
        channel.basic_publish(marker, exchange="", routing_key=QUEUE)
    assert (depth(vhost, QUEUE), depth(vhost, TEMPORARY)) == (12, 6)

    resumed = events(plat, *MIGRATE, "--to", "quorum")
    assert resumed.returncode == 0, resumed.stderr
    assert f"moved 10 message(s) {QUEUE} -> {TEMPORARY}, 1 duplicate cop(ies) dropped" in resumed.stdout
    assert_quorum(vhost)
    assert sorted(read_ids(vhost, QUEUE)) == sorted([*first, twin, *later])


def test_an_interrupted_migration_rolls_back_with_to_the_old_type(vhost, workdir, probe_template_db):
    plat = platform(vhost, workdir, probe_template_db, "migrate-rollback")
    assert events(plat, "declare").returncode == 0
    first = [plat.send(PROBE_CREATED, {"n": i}).id for i in range(4)]
    with Connection(vhost) as conn, conn.channel() as channel:  # killed after step 2
        channel.queue_declare(TEMPORARY, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(TEMPORARY, "events", PROBE_CREATED)
        channel.queue_unbind(QUEUE, "events", PROBE_CREATED)
    later = [plat.send(PROBE_CREATED, {"n": 4 + i}).id for i in range(3)]
    back = events(plat, *MIGRATE, "--to", "classic")
    assert back.returncode == 0, back.stderr
    found = broker_queues(vhost)
    assert found[QUEUE][0] == "classic" and TEMPORARY not in found, found
    assert ("events", PROBE_CREATED) in bindings_of(vhost, QUEUE)
    last = plat.send(PROBE_CREATED, {"n": 9}).id
    assert sorted(read_ids(vhost, QUEUE)) == sorted([*first, *later, last])


def test_a_binding_the_command_does_not_know_stops_it_before_an_event_is_lost(vhost, workdir, probe_template_db):
    """Without the management API the command knows alpha's handlers' patterns only: a binding no
    handler asks for keeps filling the unbound queue, and the command stops instead of deleting it."""
    plat = platform(vhost, workdir, probe_template_db, "migrate-unknown-binding")
    assert events(plat, "declare").returncode == 0
    with Connection(vhost) as conn, conn.channel() as channel:
        channel.queue_bind(QUEUE, "events", PROBE_UPDATED)
    waiting = [plat.send(PROBE_CREATED, {"n": i}).id for i in range(10)]
    with Sender(plat, vhost, PROBE_UPDATED) as sender:
        stopped = events(plat, *MIGRATE, "--to", "quorum")
    assert f"{QUEUE} keeps receiving messages after it was unbound" in one_line(stopped)
    assert sender.errors == [] and sender.returned == [], (sender.errors, len(sender.returned))
    with Connection(vhost) as conn, conn.channel() as channel:  # what `events topology verify --prune` does
        channel.queue_unbind(QUEUE, "events", PROBE_UPDATED)
    resumed = events(plat, *MIGRATE, "--to", "quorum")
    assert resumed.returncode == 0, resumed.stderr
    assert_quorum(vhost)
    assert sorted(read_ids(vhost, QUEUE)) == sorted(waiting + sender.sent)


def test_redis_has_nothing_to_migrate(fresh_redis_url, workdir, probe_template_db):
    plat = platform(fresh_redis_url, workdir, probe_template_db, "migrate-redis")
    assert "Redis has one kind of queue" in one_line(events(plat, *MIGRATE, "--to", "quorum"))


def read_ids(url: str, queue: str) -> list[str]:
    """The event ids of every message in ``queue``, taken from it."""
    ids = []
    with Connection(url) as conn, conn.channel() as channel:
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            ids.append(json.loads(message.body)[0][0]["id"])
    return ids


def test_the_live_bindings_move_with_the_queue_where_the_management_api_answers(
    managed_rabbitmq, workdir, probe_template_db
):
    node = managed_rabbitmq
    plat = platform(
        node.url, workdir, probe_template_db, "migrate-managed", EVENT_TASKS_RABBITMQ_MANAGEMENT_URL=node.management_url
    )
    assert events(plat, "declare").returncode == 0
    with Connection(node.url) as conn, conn.channel() as channel:  # a subscription alpha's handlers lack
        channel.queue_bind(QUEUE, "events", PROBE_UPDATED)
    waiting = [plat.send(PROBE_CREATED, {"n": i}).id for i in range(20)]
    before = events(
        plat, "topology", "verify", "--service", "alpha", "--json", "--ignore-consumers", queue_type="quorum"
    )
    assert before.returncode == 1, before.stderr
    drift = {(d["kind"], d["queue"], d["routing_key"]) for d in json.loads(before.stdout)["drift"]}
    assert drift == {("queue_type", QUEUE, ""), ("stale_binding", QUEUE, PROBE_UPDATED)}

    with Sender(plat, node.url, PROBE_UPDATED) as sender:
        migrated = events(plat, *MIGRATE, "--to", "quorum")
    assert migrated.returncode == 0, migrated.stderr
    assert f"(the broker's bindings): {PROBE_CREATED}, {PROBE_UPDATED}" in migrated.stdout
    assert sender.errors == [] and sender.returned == [], (sender.errors, len(sender.returned))
    assert_quorum(node.url, node.node)
    assert {("events", PROBE_CREATED), ("events", PROBE_UPDATED)} <= bindings_of(node.url, QUEUE, node.node)
    assert sorted(read_ids(node.url, QUEUE)) == sorted(waiting + sender.sent)
    after = events(
        plat, "topology", "verify", "--service", "alpha", "--json", "--ignore-consumers", queue_type="quorum"
    )
    drift = {(d["kind"], d["queue"], d["routing_key"]) for d in json.loads(after.stdout)["drift"]}
    assert drift == {("stale_binding", QUEUE, PROBE_UPDATED)}  # kept as it was: `verify --prune` is for it
