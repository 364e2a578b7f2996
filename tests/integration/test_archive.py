"""The archive and `events backfill` on real brokers with real workers (docs/archive.md).

With the archive on, 1,000 events go to alpha and beta while gamma (every learning type, by a
pattern) has no queue yet; then gamma's worker starts (its queue and bindings declared), a thread
keeps sending, and `events backfill --service gamma --since <before the first send>` puts the
archived ones into gamma's queue only. gamma applies every archived and every live event exactly
once (the overlap is suppressed by its duplicate marks), alpha and beta get no extra copy, delta
(no queue) nothing, and `events archive status` counts what was sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections import Counter

import pytest
from celery import Celery

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.conf import settings as fabric_settings
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import CATALOG_PROBE, PROBE_CREATED, PROBE_UPDATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(180)
ARCHIVE = {"EVENT_TASKS_ARCHIVE_DAYS": "7"}


@pytest.fixture(scope="module")
def archived(broker_url, workdir, probe_template_db, request):
    name = f"archive-{broker_url.split(':', 1)[0]}"
    plat = Platform(broker_url, workdir / name, env=ARCHIVE, template_db=probe_template_db)
    catalog.load(plat.env["EVENT_TASKS_SCHEMAS_PACKAGE"])
    app = Celery("producer-archive", broker=broker_url, set_as_current=False)
    install(app)
    plat._producer = Publisher(app, "prober", dataclasses.replace(fabric_settings(), archive_days=7.0))
    yield plat
    plat.stop_all()


def ids_of(plat: Platform, service: str) -> Counter[str]:
    return Counter(r["id"] for r in plat.seen(service))


def test_a_new_subscriber_backfilled_while_live_events_flow_applies_each_event_once(archived):
    plat = archived
    plat.start("alpha", "beta")  # on RabbitMQ their declare makes the archive's stream queue too
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)).isoformat()
    producer = plat.producer()
    kinds = [PROBE_CREATED] * 7 + [PROBE_UPDATED] * 2 + [CATALOG_PROBE]
    before: list[tuple[str, str]] = []
    for start in range(0, 1000, 100):
        events = producer.send_many([(kinds[i % 10], {"n": i}) for i in range(start, start + 100)])
        before += [(e.id, e.type) for e in events]
    created = {i for i, t in before if t == PROBE_CREATED}
    wait_until(lambda: set(ids_of(plat, "beta")) >= created, 60, message="beta to apply the 700 created events")

    live: list[tuple[str, str]] = []
    stop = threading.Event()

    def keep_sending() -> None:
        n = 10_000
        while not stop.is_set():
            event = producer.send(PROBE_UPDATED if n % 3 else PROBE_CREATED, {"n": n})
            live.append((event.id, event.type))
            n += 1
            stop.wait(0.01)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        plat.start("gamma")  # declares events.gamma and its binding: live events reach it from here on
        bound = len(live)  # sent from here on: in gamma's queue live, and in the archive the backfill reads
        wait_until(lambda: len(live) >= bound + 20, 30, message="live events sent after gamma's queue was bound")
        done = plat.tooling("events", "backfill", "--service", "gamma", "--since", since)
        wait_until(lambda: len(live) >= len(before) // 50 + 40, 30, message="live events after the backfill")
    finally:
        stop.set()
        sender.join(10)
    summary = done.stdout.strip().splitlines()[-1]
    learning = {i for i, t in before if t != CATALOG_PROBE}
    assert summary.startswith("backfill events.gamma: read ") and "matched" in summary, summary
    read, matched, put = (int(part.split()[-1]) for part in summary.split(": ", 1)[1].split(", "))
    assert read >= 1000 and matched >= len(learning) and put == matched, summary
    assert "read" in done.stderr  # the progress line (not a terminal: plain lines)

    marker = producer.send(PROBE_CREATED, {"n": 99_999})
    expected = learning | {i for i, _ in live} | {marker.id}
    wait_until(
        lambda: set(ids_of(plat, "gamma")) >= expected,
        60,
        message=lambda: f"gamma to apply every event: {len(expected - set(ids_of(plat, 'gamma')))} missing",
    )
    for service in ("alpha", "beta"):
        plat.wait_calls(service, marker.id)
    gamma = ids_of(plat, "gamma")
    assert [i for i, n in gamma.items() if n > 1] == []  # 0 applied twice
    assert set(gamma) == expected  # 0 lost, and no catalog event (gamma does not consume it)
    suppressed = plat.query("gamma", "SELECT COALESCE(SUM(duplicates), 0) AS n FROM event_tasks_processedevent")
    assert suppressed[0]["n"] >= 20  # the overlap came twice; the duplicate marks kept the second out
    created_all = created | {i for i, t in live if t == PROBE_CREATED} | {marker.id}
    for service in ("alpha", "beta"):  # no extra copy for the services that were there
        seen = ids_of(plat, service)
        assert set(seen) == created_all and max(seen.values()) == 1, service
    if plat.broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(plat.broker_url)
        assert not client.exists("events.delta")  # no queue was made for a service that has none
        assert client.xlen("events.archive") == len(before) + len(live) + 1

    status = json.loads(plat.tooling("events", "archive", "status", "--json").stdout)
    assert status["archive"] == "events.archive" and status["retention_days"] == 7
    assert status["last_hour"] == status["last_day"] == len(before) + len(live) + 1
    assert status["oldest"] and status["newest"] and status["oldest"] <= status["newest"]
    text = plat.tooling("events", "archive", "status").stdout
    assert f"{len(before) + len(live) + 1}/h over the last hour" in text


def test_a_dry_run_counts_and_puts_nothing(archived):
    plat = archived
    plat.tooling("events", "declare", "--service", "gamma")  # its bindings (the worker may not run), the archive
    plat.producer().send_many([(PROBE_UPDATED, {"n": 70_000 + i}) for i in range(200)])
    done = plat.tooling(
        "events", "backfill", "--service", "gamma", "--since", "1h", "--type", "*.*.*.*.updated.*", "--dry-run"
    )
    line = done.stdout.strip().splitlines()[-1]
    assert "would put" in line and int(line.rsplit(" ", 1)[1]) >= 200, line


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("--service", "nobody", "--since", "1h"), {}, "no service 'nobody'"),
        (("--service", "gamma", "--since", "yesterday"), {}, "--since 'yesterday'"),
        (("--service", "gamma", "--since", "1h", "--rate", "0"), {}, "--rate"),
        (("--service", "gamma", "--since", "1h"), {"EVENT_TASKS_ARCHIVE_DAYS": ""}, "EVENT_TASKS_ARCHIVE_DAYS"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(archived, args, env, says):
    out = archived.tooling("events", "backfill", *args, check=False, env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in out.stderr, out.stderr


def test_rabbitmq_verify_neither_reports_nor_prunes_the_archive(managed_rabbitmq, workdir, probe_template_db):
    """The stream queue's `#` binding is no orphan queue: `events topology verify --prune` leaves it
    (a private node with the management API, which verify reads; the shared node has none)."""
    from tests.brokers import rabbitmqctl

    node = managed_rabbitmq
    plat = None
    try:
        env = {**ARCHIVE, "EVENT_TASKS_RABBITMQ_MANAGEMENT_URL": node.management_url}
        plat = Platform(node.url, workdir / "archive-verify", env=env, template_db=probe_template_db)
        plat.start("alpha")

        def archive_bindings() -> list[str]:
            out = rabbitmqctl("-n", node.node, "list_bindings", "source_name", "destination_name", "routing_key", "-q")
            return [line for line in out.splitlines() if line.split("\t")[1:] == ["events.archive", "#"]]

        assert len(archive_bindings()) == 1  # the worker's declare made the stream queue and bound it
        queues = rabbitmqctl("-n", node.node, "list_queues", "name", "type", "arguments", "-q")
        assert any(line.startswith("events.archive\tstream") and "7D" in line for line in queues.splitlines())
        for args in (("--service", "alpha"), ("--prune", "--service", "alpha")):
            out = plat.tooling("events", "topology", "verify", "--json", *args, check=False)
            report = json.loads(out.stdout)
            assert out.returncode == 0 and report["drift"] == [] and report["pruned"] == [], (args, out.stdout)
        everyone = json.loads(plat.tooling("events", "topology", "verify", "--json", "--prune", check=False).stdout)
        assert everyone["drift"] and not [d for d in everyone["drift"] if d["queue"] == "events.archive"]
        assert not [d for d in everyone["pruned"] if d["queue"] == "events.archive"]  # (the probes not running are)
        assert len(archive_bindings()) == 1
    finally:
        if plat is not None:
            plat.stop_all()


def test_a_signed_archive_keeps_verifying_when_backfilled(archived):
    """epsilon enforces signatures and did not exist when prober sent: the backfilled bodies carry
    their signatures and verify; an unsigned one sent beside them is refused (`unsigned`)."""
    from event_tasks.testing import make_test_keys

    plat = archived
    keys = make_test_keys("prober")
    since = dt.datetime.now(dt.UTC).isoformat()
    conf = dataclasses.replace(
        fabric_settings(), archive_days=7.0, signing_key=keys.private["prober"], signing_key_id=keys.key_id("prober")
    )
    signer = Publisher(plat.producer().app, "prober", conf)
    signed = [e.id for e in signer.send_many([(PROBE_CREATED, {"n": 50_000 + i}) for i in range(50)])]
    unsigned = plat.send(PROBE_CREATED, {"n": 60_000})
    table = json.dumps({"prober": {keys.key_id("prober"): keys.public["prober"]}})
    plat.worker("epsilon", env={"EVENT_TASKS_SIGNING_PUBLIC_KEYS": table, "EVENT_TASKS_SIGNING_MODE": "enforce"})
    plat.start("epsilon")
    done = plat.tooling("events", "backfill", "--service", "epsilon", "--since", since)
    assert done.stdout.strip().endswith("put 51"), done.stdout
    wait_until(lambda: set(ids_of(plat, "epsilon")) >= set(signed), 60, message="epsilon to apply the signed events")
    wait_until(lambda: plat.dead_letters("epsilon"), 30, message="the unsigned event's dead letter")
    letters = plat.dead_letters("epsilon")
    assert [(r["event_id"], r["reason"]) for r in letters] == [(unsigned.id, "unsigned")]
    assert unsigned.id not in ids_of(plat, "epsilon") and max(ids_of(plat, "epsilon").values()) == 1


def test_prune_trims_the_redis_archive_and_leaves_rabbitmq_to_the_broker(archived):
    plat = archived
    plat.worker("alpha")  # its database (the worker may not run)
    plat.tooling("events", "declare", "--service", "alpha")
    plat.send(PROBE_CREATED, {"n": 80_000})
    before = json.loads(plat.tooling("events", "archive", "status", "--json").stdout)["entries"]
    out = plat.manage("alpha", "events", "prune")
    if plat.broker_url.startswith("redis"):
        assert "trimmed 0 archived events past 7 days" in out  # all of them are younger
        import redis

        assert redis.Redis.from_url(plat.broker_url).xlen("events.archive") == before
    else:
        assert "trimmed" not in out  # the stream's x-max-age ages it out


def test_a_send_no_service_takes_is_archived_and_counted_as_unrouted_on_redis_only(archived):
    """Redis: the script archives it and still answers 0 copies. RabbitMQ: the archive's `#` binding
    routes every publish, so the broker returns none (docs/archive.md, "Limits")."""
    plat = archived
    plat.worker("alpha")
    plat.tooling("events", "declare", "--service", "alpha")  # the archive (RabbitMQ); delta has no queue
    producer = plat.producer()
    before = producer.stats["unrouted"]
    since = dt.datetime.now(dt.UTC).isoformat()
    nobody = plat.send(CATALOG_PROBE, {"n": 90_000})
    redis_broker = plat.broker_url.startswith("redis")
    assert producer.stats["unrouted"] == before + (1 if redis_broker else 0)
    plat.worker("delta")  # a tooling process that sees delta's handlers: declare it now, then backfill
    plat.tooling("events", "declare", "--service", "delta")
    done = plat.tooling("events", "backfill", "--service", "delta", "--since", since, "--dry-run")
    assert done.stdout.strip().endswith("would put 1"), done.stdout  # it is in the archive
    assert nobody.id
