"""The fabric as a drop-in on a worker: per-handler options on a real worker, and an event queue
consumed beside the host's own queue (``-Q events.<service>,celery``) keeping the crash-safe path.
Both brokers."""

from __future__ import annotations

import pytest
import redis

from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED

pytestmark = pytest.mark.timeout(180)


def letters(platform, service, event_id):
    return [r for r in platform.dead_letters(service) if r["event_id"] == event_id]


def test_handler_options_stable_name_retry_budget_and_dont_retry(platform):
    platform.start("zeta")
    good = platform.send(PROBE_UPDATED, {"n": 1})
    platform.wait_calls("zeta", good.id)
    wait_until(lambda: platform.processed("zeta", good.id), 20, message="zeta's duplicate mark")
    assert [r["handler"] for r in platform.processed("zeta", good.id)] == ["zeta.audit"]  # the name= given

    unfixable = platform.send(PROBE_UPDATED, {"n": 2}, key="unfixable:zeta:x")
    (row,) = wait_until(lambda: letters(platform, "zeta", unfixable.id), 30, message="the not_retried dead letter")
    assert row["reason"] == "not_retried" and row["attempts"] == 1
    assert "zeta.audit: Unfixable: this payload can never be audited" in row["detail"]

    failing = platform.send(PROBE_UPDATED, {"n": 3}, key="fail:zeta:always")
    (row,) = wait_until(lambda: letters(platform, "zeta", failing.id), 60, message="the max_retries dead letter")
    assert row["reason"] == "max_retries" and row["attempts"] == 2  # max_retries=1 on the handler
    assert platform.calls("zeta", unfixable.id) == 1 and platform.calls("zeta", failing.id) == 2


def test_event_queue_beside_the_hosts_queue_keeps_its_own_consume_path(platform):
    worker = platform.worker("alpha", extra_queues=("celery",))
    worker.start()
    assert "events.alpha,celery" in " ".join(worker.command())
    slow = platform.send(PROBE_CREATED, {"n": 4}, key="slow:alpha:3")
    platform.wait_calls("alpha", slow.id)
    if platform.broker_url.startswith("redis"):
        # The event channel records what it holds in the service's own unacked hash (not kombu's
        # shared "unacked"), which only the intake's channel does: the crash-safe path is in use.
        client = redis.Redis.from_url(platform.broker_url)
        held = client.hkeys("unacked:events.alpha")
        assert [k.decode() for k in held] == [f"{slow.id}:alpha"]
        assert client.hlen("unacked") == 0
    wait_until(lambda: f"[{slow.id}:alpha] succeeded" in worker.log(), 30, message="alpha's task succeeded")
    assert len(platform.processed("alpha", slow.id)) == 1
    if platform.broker_url.startswith("redis"):
        wait_until(lambda: client.hlen("unacked:events.alpha") == 0, 10, message="the ack")


def test_the_event_worker_fixture_runs_a_real_worker_for_one_service(
    event_worker, platform, probe_template_db, tmp_path
):
    """The pytest plugin's fixture (what a service's own tests use), against this module's broker."""
    import shutil

    db = tmp_path / "epsilon.sqlite3"
    shutil.copy(probe_template_db, db)
    env = {**platform.worker_env("epsilon"), "DATABASE_URL": f"sqlite:///{db}", "TEST_RECORD_DIR": str(tmp_path)}
    worker = event_worker("epsilon", broker_url=platform.broker_url, env=env)
    assert worker.running
    event = platform.send(PROBE_CREATED, {"n": 5})
    wait_until(
        lambda: (tmp_path / "epsilon.jsonl").exists() and event.id in (tmp_path / "epsilon.jsonl").read_text(),
        30,
        message="epsilon's handler, run by the fixture's worker",
    )


def test_a_resent_event_with_the_producers_id_is_applied_once(platform):
    """A send retried under the same id (e.g. after a PublishError that did reach the broker)."""
    platform.start("beta")
    first = platform.producer().send(PROBE_CREATED, {"n": 6}, id="order-42-created")
    again = platform.producer().send(PROBE_CREATED, {"n": 6}, id="order-42-created")
    assert first.id == again.id == "order-42-created"
    marker = platform.send(PROBE_CREATED, {"n": 7})
    platform.wait_calls("beta", marker.id)
    wait_until(
        lambda: [r["duplicates"] for r in platform.processed("beta", first.id)] == [1],
        20,
        message="the second copy suppressed as a duplicate",
    )
    assert platform.calls("beta", first.id) == 1
