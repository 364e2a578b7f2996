"""``events topology verify`` and pruning on real brokers: Redis, and RabbitMQ with its management API
(a private node with the plugin: the machine's shared node has none, and gets none)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from event_tasks.testing import wait_until
from tests.brokers import RedisServer, rabbitmqctl, take_redis_db
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def drift_platform(request, redis_server: RedisServer, workdir: Path, probe_template_db: Path) -> Iterator[Platform]:
    env: dict[str, str] = {}
    if request.param == "redis":
        url = take_redis_db(redis_server)
    else:
        node = request.getfixturevalue("managed_rabbitmq")
        url, env = node.url, {"EVENT_TASKS_RABBITMQ_MANAGEMENT_URL": node.management_url}
    plat = Platform(url, workdir / f"topology-{request.param}", env=env, template_db=probe_template_db)
    plat.kind = request.param
    plat.broker_node = None if request.param == "redis" else node.node
    plat.start("alpha")
    yield plat
    plat.stop_all()
    if request.param == "redis":
        import redis as redis_lib

        redis_lib.Redis.from_url(url).flushdb()


def broker_bindings(plat: Platform) -> set[tuple[str, str]]:
    """``(queue, routing key)`` on ``events``, read by the broker's own tools, not by the code under test."""
    if plat.kind == "redis":
        import redis as redis_lib

        members = redis_lib.Redis.from_url(plat.broker_url).smembers("_kombu.binding.events")
        return {(m.decode().split("\x06\x16")[2], m.decode().split("\x06\x16")[0]) for m in members}
    out = rabbitmqctl(
        "-n",
        plat.broker_node,
        "list_bindings",
        "source_name",
        "destination_name",
        "routing_key",
        "--quiet",
        "--no-table-headers",
    )
    return {(p[1], p[2]) for p in (line.split("\t") for line in out.splitlines()) if len(p) == 3 and p[0] == "events"}


def bind(plat: Platform, queue: str, routing_key: str) -> None:
    with Connection(plat.broker_url) as conn, conn.channel() as channel:
        Queue(queue, Exchange("events", type="topic", durable=True), routing_key=routing_key, durable=True)(
            channel
        ).declare()


def verify(plat: Platform, *args: str) -> tuple[int, dict]:
    out = plat.tooling("events", "topology", "verify", "--json", *args, check=False)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def kinds(report: dict) -> set[tuple[str, str, str]]:
    return {(d["kind"], d["queue"], d["routing_key"]) for d in report["drift"]}


def test_in_line_with_the_code(drift_platform):
    code, report = verify(drift_platform, "--service", "alpha")
    assert code == 0 and report["ok"] and report["drift"] == [], report
    assert report["expected"] == {"events.alpha": [PROBE_CREATED]}
    assert ("events.alpha", PROBE_CREATED) in broker_bindings(drift_platform)
    shown = json.loads(drift_platform.tooling("events", "topology", "--json").stdout)
    assert {"queue": "events.alpha", "routing_key": PROBE_CREATED} in shown


def test_stale_binding_and_orphan_queue_are_drift_and_prune_removes_them(drift_platform):
    bind(drift_platform, "events.alpha", PROBE_UPDATED)  # a handler alpha no longer has
    bind(drift_platform, "events.removed", "org.openedx.learning.#")  # a service that no longer exists
    assert ("events.alpha", PROBE_UPDATED) in broker_bindings(drift_platform)
    code, report = verify(drift_platform, "--service", "alpha")
    assert code == 1 and not report["ok"]
    assert ("stale_binding", "events.alpha", PROBE_UPDATED) in kinds(report)
    assert ("orphan_queue", "events.removed", "") in kinds(report)
    text = drift_platform.tooling("events", "topology", "verify", "--service", "alpha", check=False)
    assert text.returncode == 1 and "stale_binding" in text.stdout and "events.removed" in text.stdout

    pruned = drift_platform.tooling("events", "topology", "verify", "--prune", "--json", "--service", "alpha")
    after = json.loads(pruned.stdout)
    assert after["ok"] and {(p["queue"], p["routing_key"]) for p in after["pruned"]} == {
        ("events.alpha", PROBE_UPDATED),
        ("events.removed", "org.openedx.learning.#"),
    }
    assert f"pruned events.alpha <- {PROBE_UPDATED}" in pruned.stderr
    left = broker_bindings(drift_platform)
    assert ("events.alpha", PROBE_UPDATED) not in left and ("events.alpha", PROBE_CREATED) in left
    assert not any(q == "events.removed" for q, _ in left)
    assert verify(drift_platform, "--service", "alpha")[0] == 0
    # The pruned subscription gets nothing any more: no copy, no unknown_type dead letter.
    updated = drift_platform.send(PROBE_UPDATED, {"n": 1})
    marker = drift_platform.send(PROBE_CREATED, {"n": 2})
    drift_platform.wait_calls("alpha", marker.id)
    assert drift_platform.calls("alpha", updated.id) == 0 and not drift_platform.dead_letters("alpha")


def test_declare_prunes_what_no_handler_asks_for(drift_platform):
    bind(drift_platform, "events.alpha", "org.openedx.catalog.#")
    drift_platform.tooling("events", "declare", "--service", "alpha")
    left = broker_bindings(drift_platform)
    assert ("events.alpha", "org.openedx.catalog.#") not in left and ("events.alpha", PROBE_CREATED) in left


def test_missing_queue_and_bindings_until_declared(drift_platform):
    code, report = verify(drift_platform, "--service", "gamma", "--service", "alpha")
    assert code == 1
    assert kinds(report) == {
        ("missing_queue", "events.gamma", ""),
        ("missing_binding", "events.gamma", "org.openedx.learning.#"),
    }
    drift_platform.tooling("events", "declare", "--service", "gamma")
    code, report = verify(drift_platform, "--service", "gamma", "--service", "alpha")
    if drift_platform.kind == "rabbitmq":  # the broker counts consumers: gamma's worker is not running
        assert code == 1 and kinds(report) == {("no_consumer", "events.gamma", "")}
        code, report = verify(drift_platform, "--service", "gamma", "--service", "alpha", "--ignore-consumers")
    assert code == 0, report


def test_rabbitmq_without_the_management_api_cannot_verify(rabbitmq_url, workdir, probe_template_db):
    plat = Platform(
        rabbitmq_url,
        workdir / "topology-nomgmt",
        template_db=probe_template_db,
        env={"EVENT_TASKS_RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:1"},
    )
    out = plat.tooling("events", "topology", "verify", "--service", "alpha", check=False)
    assert out.returncode == 2
    assert "rabbitmq_management" in out.stderr and "EVENT_TASKS_RABBITMQ_MANAGEMENT_URL" in out.stderr


def test_status_counts_what_a_worker_runs_and_has_not_acked(drift_platform):
    """While beta's handler runs, status sees it active in the worker and unacked on the broker
    (RabbitMQ's unacked count comes from the management API, sampled every few seconds). A prefork
    worker, as in production: a solo pool's main thread runs the handler and cannot answer."""
    drift_platform.worker("beta", pool="prefork", concurrency=2).start()
    event = drift_platform.send(PROBE_CREATED, {"n": 9}, key="slow:beta:20")
    drift_platform.wait_calls("beta", event.id)
    seen: list[dict] = []

    def beta() -> dict:
        out = drift_platform.tooling("events", "status", "--json", "--service", "beta")
        seen.append(json.loads(out.stdout))
        (row,) = seen[-1]["services"]
        return row if row["active"] == 1 and row["unacked"] == 1 else None

    row = wait_until(beta, 18, 0.5, lambda: f"beta's running delivery in events status: {seen[-1:]}")
    assert row["depth"] == 0 and len(row["workers"]) == 1
    drift_platform.workers["beta"].stop()
