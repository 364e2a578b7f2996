"""Per-service Redis ACL users (event_tasks/brokers/redis/acl.py) on a private redis-server, with
real workers each connected as its own user and a producer as its own.

The plan is applied for the probe services alpha and beta (consumers; alpha enforces signatures),
prober (the owner of every probe type) and an operator's admin user. Then: a signed send as prober
reaches every subscriber's queue; alpha's and beta's workers consume, retry and acknowledge with
their users alone; alpha's user is refused another service's queue and the dangerous commands;
prober's user may push any bytes into a subscriber's queue (Redis sees keys, not types), and what
is not signed by the owner becomes a dead letter there. At the end Redis's ACL LOG holds no
refusal but the ones this module provoked (and the persistence check's ``CONFIG GET``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.brokers.message import encode_body
from event_tasks.brokers.redis import acl
from event_tasks.brokers.redis.fanout import RedisFanout
from event_tasks.conf import settings as fabric_settings
from event_tasks.send.publisher import Publisher
from event_tasks.testing import make_test_keys, wait_until
from tests.brokers import RedisServer
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT, Platform, probe_handlers
from tests.integration.test_ops_tail import TailProcess

pytestmark = pytest.mark.timeout(180)

PROBE_SERVICES = ("alpha", "beta", "delta", "epsilon", "eta", "gamma", "zeta")
SUBSCRIBERS = ("alpha", "beta", "epsilon", "gamma")  # of PROBE_CREATED (gamma by a pattern)
KEYS = make_test_keys("prober")
PUBLIC = json.dumps({"prober": {"prober-test": KEYS.public["prober"]}})
WORKER_ENV = {
    "EVENT_TASKS_RETRY_BACKOFF": "0.2",
    "EVENT_TASKS_MAX_RETRIES": "2",
    "EVENT_TASKS_SIGNING_PUBLIC_KEYS": PUBLIC,
    # a killed worker's delivery back within ~5 s (kombu's restore, the fabric's sweep: their commands too)
    "EVENT_TASKS_VISIBILITY_TIMEOUT": "4",
    "EVENT_TASKS_RESTORE_INTERVAL": "1",
    "CELERY_WORKER_LOST_WAIT": "0.5",
}
# What this module makes Redis refuse on purpose, as (user, the command, key or channel refused) in
# the ACL LOG; and the workers' start-up persistence check (CONFIG GET: refused to services; it warns).
PROVOKED = {
    *(("events-alpha", what) for what in ("events.epsilon", "unacked:events.epsilon", "_kombu.binding.events")),
    *(("events-alpha", what) for what in ("lrange", "rpop", "brpop", "lpush", "del", "hgetall", "srem", "sadd")),
    *(("events-alpha", what) for what in ("flushall", "flushdb", "config|get", "keys", "publish", "/0.celery.pidbox")),
    *(("events-prober", what) for what in ("events.gamma", "celery", "_kombu.binding.events", "lrange", "rpop")),
    *(("events-prober", what) for what in ("lpush", "sadd")),
    ("events-beta", "config|get"),
}


@dataclasses.dataclass
class Fabric:
    server: RedisServer
    platform: Platform
    users: dict[str, str]  # service -> its redis URL

    def client(self, service: str) -> redis.Redis:
        return redis.Redis.from_url(self.users[service])

    def admin(self) -> redis.Redis:
        return self.server.client()


def user_url(server: RedisServer, name: str) -> str:
    return f"redis://{name}:pw-{name}@127.0.0.1:{server.port}/0"


@pytest.fixture(scope="module")
def fabric(workdir: Path, probe_template_db: Path) -> Iterator[Fabric]:
    server = RedisServer().start()
    try:
        catalog.load("tests.fabric.schemas")
        conf = dataclasses.replace(fabric_settings(), schemas_package="tests.fabric.schemas")
        consumers = {s: probe_handlers(s).event_types for s in PROBE_SERVICES}
        plan = acl.plan(["alpha", "beta", "prober"], conf, consumers=consumers, host_queues=["maintenance.{service}"])
        users = [*plan, acl.admin()]
        acl.apply(server.client(), users, {u.name: f"pw-{u.name}" for u in users})
        urls = {u.name.removeprefix("events-"): user_url(server, u.name) for u in users}
        platform = Platform(urls["admin"], workdir / "redis-acl", template_db=probe_template_db)
        platform.tooling("events", "declare")  # the release step, as the admin: every subscription
        for service, mode in (("alpha", "enforce"), ("beta", "warn")):
            platform.worker(
                service,
                env={**WORKER_ENV, "CELERY_BROKER_URL": urls[service], "EVENT_TASKS_SIGNING_MODE": mode},
                extra_queues=(f"maintenance.{service}",),  # as the Procfile's workers: the prune task's queue
            )
        platform.start("alpha", "beta")
        yield Fabric(server, platform, urls)
        platform.stop_all()
    finally:
        server.cleanup()


def signed_publisher(fabric: Fabric) -> Publisher:
    app = Celery("producer-prober-acl", broker=fabric.users["prober"], set_as_current=False)
    install(app)
    conf = dataclasses.replace(
        fabric_settings(), signing_key=KEYS.private["prober"], signing_key_id=KEYS.key_id("prober")
    )
    return Publisher(app, "prober", conf)


def test_a_send_as_the_producer_reaches_every_subscriber_and_a_retry_is_applied(fabric):
    admin = fabric.admin()
    parked = {s: admin.llen(f"events.{s}") for s in ("epsilon", "gamma")}  # no worker: the copies stay
    publisher = signed_publisher(fabric)
    event = publisher.send(PROBE_CREATED, {"n": 1})
    retried = publisher.send(PROBE_CREATED, {"n": 2}, key="fail:alpha:1")  # alpha fails it once
    (batched,) = publisher.send_many([(PROBE_CREATED, {"n": 7})])  # the outbox relay's way: a pipeline of scripts
    for service in ("alpha", "beta"):
        fabric.platform.wait_calls(service, event.id)
        fabric.platform.wait_calls(service, batched.id)
        fabric.platform.wait_calls(service, retried.id, count=2 if service == "alpha" else 1)
    wait_until(lambda: fabric.platform.processed("alpha", retried.id), 30, message="alpha's mark of the retried event")
    assert fabric.platform.calls("alpha", retried.id) == 2 and fabric.platform.calls("beta", retried.id) == 1
    assert {s: admin.llen(f"events.{s}") - parked[s] for s in parked} == {"epsilon": 3, "gamma": 3}
    assert admin.llen("events.delta") == 0  # not a subscriber of the type: nothing pushed there
    wait_until(lambda: admin.hlen("unacked:events.alpha") == 0, 30, message="alpha's acks")
    assert fabric.platform.dead_letters("alpha") == []


@pytest.mark.django_db(transaction=True)
def test_the_outbox_relay_publishes_with_the_producers_user(fabric):
    from django.db import transaction
    from django.utils import timezone

    from event_tasks.models import OutboxEvent
    from event_tasks.send.relay import Relay
    from event_tasks.store import outbox, sent

    publisher = signed_publisher(fabric)
    with transaction.atomic():
        event = publisher.send(PROBE_CREATED, {"n": 8})  # a row, published on commit
    sent.marks(outbox.mark_sent_ids).take()  # as if the sender died before marking it sent
    OutboxEvent.objects.update(claimed_until=timezone.now() - dt.timedelta(seconds=1))  # and its lease ran out
    assert Relay(publisher, grace=0).drain() == 1  # the relay's publish, as prober
    assert OutboxEvent.objects.get().sent_at is not None
    for service in ("alpha", "beta"):
        fabric.platform.wait_calls(service, event.id)
    wait_until(lambda: fabric.platform.processed("alpha", event.id), 30, message="alpha's mark")


@pytest.mark.parametrize(
    "command",
    [
        ("LRANGE", "events.epsilon", 0, -1),
        ("RPOP", "events.epsilon"),
        ("BRPOP", "events.epsilon", 1),
        ("LPUSH", "events.epsilon", "x"),
        ("DEL", "events.epsilon"),
        ("HGETALL", "unacked:events.epsilon"),
        ("SREM", "_kombu.binding.events", "x"),
        ("DEL", "_kombu.binding.events"),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "requirepass"),
        ("KEYS", "*"),
        ("PUBLISH", "/0.celery.pidbox", "x"),  # a control command to every worker
    ],
)
def test_a_consumer_is_refused_other_queues_and_dangerous_commands(fabric, command):
    before = fabric.admin().llen("events.epsilon")  # a subscriber without a running worker
    with pytest.raises(redis.exceptions.NoPermissionError):
        fabric.client("alpha").execute_command(*command)
    assert fabric.admin().llen("events.epsilon") == before > 0  # nothing taken, added or deleted


def test_a_producer_cannot_read_the_queues_it_pushes_into_nor_push_elsewhere(fabric):
    prober = fabric.client("prober")
    for command in (("LRANGE", "events.gamma", 0, -1), ("RPOP", "events.gamma"), ("LPUSH", "celery", "x")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            prober.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        prober.sadd("_kombu.binding.events", "org.openedx.learning.probe.created.v1\x06\x16\x06\x16celery")


def test_a_producer_may_push_any_bytes_into_a_subscriber_queue_and_only_signatures_stop_it(fabric):
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    forged = {"id": str(uuid.uuid4()), "type": PROBE_CREATED, "source": "prober", "time": now, "specversion": "1.0"}
    forged["key"] = None
    body, argsrepr = encode_body(forged, {"n": 3, "note": ""})
    fanout = RedisFanout(fabric.users["prober"], {}, fabric_settings())
    try:  # a well-formed task message, unsigned, and bytes that are no message at all: Redis takes both
        fanout.publish_to("events.alpha", "alpha", PROBE_CREATED, forged["id"], body, argsrepr)
        assert fabric.client("prober").lpush("events.alpha", b"\x00not a message") > 0
    finally:
        fanout.close()

    def letters() -> list[tuple[str, str]]:
        return sorted((row["reason"], row["event_id"] or "") for row in fabric.platform.dead_letters("alpha"))

    wait_until(lambda: len(letters()) >= 2, 30, message=lambda: f"alpha's dead letters: {letters()}")
    assert [reason for reason, _ in letters()] == ["undecodable", "unsigned"]
    assert ("unsigned", forged["id"]) in letters()
    assert fabric.platform.calls("alpha", forged["id"]) == 0  # its handler never ran
    assert fabric.platform.workers["alpha"].running


def test_a_killed_worker_gets_its_delivery_back_with_its_own_user(fabric):
    event = signed_publisher(fabric).send(PROBE_CREATED, {"n": 4}, key="slow:alpha:30")
    alpha = fabric.platform.workers["alpha"]
    fabric.platform.wait_calls("alpha", event.id)  # running its 30 s first attempt
    alpha.kill()
    alpha.start()
    wait_until(lambda: fabric.platform.processed("alpha", event.id), 40, message=lambda: alpha.output()[-2000:])
    assert fabric.platform.calls("alpha", event.id) == 2


def test_a_dead_letter_is_replayed_with_the_services_own_user(fabric):
    platform = fabric.platform
    blocked = platform.dir / "blocked-alpha"
    blocked.touch()
    event = signed_publisher(fabric).send(PROBE_CREATED, {"n": 6}, key="blocked:alpha:x")
    wait_until(lambda: [r for r in platform.dead_letters("alpha") if r["event_id"] == event.id], 30)
    blocked.unlink()
    (letter,) = [r["id"] for r in platform.dead_letters("alpha") if r["event_id"] == event.id]
    env = {**os.environ, **platform.worker_env("alpha"), "CELERY_BROKER_URL": fabric.users["alpha"]}
    command = [sys.executable, "manage.py", "events", "deadletters", "replay", str(letter)]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    wait_until(
        lambda: platform.processed("alpha", event.id), 30, message=lambda: platform.workers["alpha"].output()[-2000:]
    )


def test_an_operators_tail_gets_the_producers_copies(fabric):
    tail = TailProcess(fabric.platform, "--type", PROBE_CREATED, "--json", "--count", "1")  # as the admin
    event = signed_publisher(fabric).send(PROBE_CREATED, {"n": 5})  # pushed into the tail's queue too
    assert tail.process.wait(30) == 0, tail.err
    wait_until(lambda: any(event.id in line for line in tail.out), 10, message=lambda: str(tail.out))


def test_the_operators_status_reaches_the_workers_through_their_control_replies(fabric):
    out = fabric.platform.tooling("events", "status").stdout  # as the admin; each worker answers as itself
    workers = out.split("workers:", 1)[1]
    assert "alpha-" in workers and "beta-" in workers, out


def test_the_host_queue_of_the_prune_task_is_consumed_with_the_services_user(fabric):
    beat = Celery("beat-acl", broker=fabric.users["admin"], set_as_current=False)  # beat runs as the admin
    task_id = beat.send_task("event_tasks.prune", queue="maintenance.alpha").id
    alpha = fabric.platform.workers["alpha"]
    done = re.compile(rf"event_tasks\.prune\[{task_id}\] succeeded")
    wait_until(lambda: done.search(alpha.log()), 30, message=lambda: alpha.output()[-2000:])


def test_the_printed_lines_read_by_redis_cli_make_the_same_users_as_apply(fabric):
    admin = fabric.admin()
    for name in ("alpha", "prober"):
        applied = admin.acl_getuser(f"events-{name}")
        line = acl.rules_text(acl.AclUser(f"cli-{name}", tuple(applied_rules(fabric, name))), "pw-cli")
        out = subprocess.run(
            ["redis-cli", "-p", str(fabric.server.port)], input=line + "\n", capture_output=True, text=True, timeout=30
        )
        assert out.stdout.strip() == "OK", (line, out.stdout, out.stderr)
        printed = admin.acl_getuser(f"cli-{name}")
        assert {k: v for k, v in printed.items() if k != "passwords"} == {
            k: v for k, v in applied.items() if k != "passwords"
        }


def applied_rules(fabric: Fabric, name: str) -> tuple[str, ...]:
    conf = dataclasses.replace(fabric_settings(), schemas_package="tests.fabric.schemas")
    consumers = {s: probe_handlers(s).event_types for s in PROBE_SERVICES}
    (user,) = acl.plan([name], conf, consumers=consumers, host_queues=["maintenance.{service}"])
    return user.rules


def test_the_acl_log_holds_only_what_was_provoked(fabric):
    fabric.platform.stop_all()  # their shutdown too: unbinding pidboxes, restoring what they held
    log = fabric.admin().acl_log(200)
    refused = {(entry["username"], entry["object"]) for entry in log}
    assert refused - PROVOKED == set(), log  # nothing the workers, the producer or the admin needed
    assert ("events-alpha", "config|get") in refused  # the log works: the start-up check was refused


def test_events_broker_users_apply_makes_the_users_on_the_brokers_server(tmp_path: Path):
    from event_tasks.management import broker_users

    server = RedisServer().start()
    try:
        names = ["events-credentials", "events-lms", "events-admin"]  # the demo's services, as this process sees them
        for name in names:
            (tmp_path / name).write_text(f"pw-{name}\n")
        said: list[str] = []
        broker_users.run(
            server.url,
            fabric_settings(),
            said.append,
            services=["credentials", "lms"],
            do_apply=True,
            password_dir=str(tmp_path),
        )
        assert said == [f"{name}: ACL user made on 127.0.0.1:{server.port}/0" for name in names]
        assert set(names) <= {u if isinstance(u, str) else u.decode() for u in server.client().acl_users()}
        credentials = redis.Redis.from_url(user_url(server, "events-credentials"))
        assert credentials.llen("events.credentials") == 0  # its own queue: allowed
        with pytest.raises(redis.exceptions.NoPermissionError):
            credentials.llen("events.ecommerce")
        with pytest.raises(redis.exceptions.NoPermissionError):
            credentials.flushall()
        credentials.close()
    finally:
        server.cleanup()
