"""Deploys on real brokers: the release step binds a new type while the old workers still run.

The old worker has no handler for the new type. Its copy must wait (held, then put back in the
queue) until a worker of the new release takes it; only an event still unknown
``EVENT_TASKS_UNKNOWN_TYPE_WAIT`` seconds after it was sent becomes an ``unknown_type`` dead letter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from event_tasks.brokers import topology
from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(180)

NEXT_RELEASE = {"PROBE_NEXT_RELEASE": "1"}


def release_step(plat: Platform) -> None:
    """What ``events declare`` of the next release does for alpha: bind the new type too."""
    with Connection(plat.broker_url) as conn:
        topology.declare(conn, [topology.service_queue("alpha", [PROBE_CREATED, PROBE_UPDATED])])


def replace_worker(plat: Platform, env: dict[str, str]):
    plat.workers.pop("alpha").stop()
    return plat.worker("alpha", env=env).start()


def test_event_of_a_type_only_the_next_release_knows_waits_for_it(
    broker_url: str, workdir: Path, probe_template_db: Path
) -> None:
    plat = Platform(broker_url, workdir / f"deploy-{broker_url.split(':', 1)[0]}", template_db=probe_template_db)
    try:
        old = plat.worker("alpha").start()
        release_step(plat)
        new_type = plat.send(PROBE_UPDATED, {"n": 1})
        wait_until(
            lambda: new_type.id in old.output() and "held" in old.output(),
            30,
            message=lambda: f"the old worker holding {new_type.id}; log: {old.output()[-2000:]}",
        )
        known = plat.send(PROBE_CREATED, {"n": 2})  # the old worker goes on with what it knows
        plat.wait_calls("alpha", known.id)
        wait_until(lambda: old.output().count(new_type.id) >= 2, 30, message="the held event put back and seen again")
        assert plat.dead_letters("alpha") == [] and plat.calls("alpha", new_type.id) == 0

        replace_worker(plat, NEXT_RELEASE)  # the new release's worker arrives
        plat.wait_calls("alpha", new_type.id, timeout=60)
        wait_until(lambda: len(plat.processed("alpha", new_type.id)) == 1, 30, message="the new type applied")
        assert plat.dead_letters("alpha") == [] and plat.calls("alpha", new_type.id) == 1
    finally:
        plat.stop_all()


def test_event_nobody_learns_to_handle_is_a_dead_letter_after_the_wait(
    broker_url: str, workdir: Path, probe_template_db: Path
) -> None:
    plat = Platform(
        broker_url,
        workdir / f"deploy-wait-{broker_url.split(':', 1)[0]}",
        env={"EVENT_TASKS_UNKNOWN_TYPE_WAIT": "3"},
        template_db=probe_template_db,
    )
    try:
        plat.worker("alpha").start()
        release_step(plat)
        stray = plat.send(PROBE_UPDATED, {"n": 3})
        rows = wait_until(
            lambda: [r for r in plat.dead_letters("alpha") if r["event_id"] == stray.id],
            40,
            message="an unknown_type dead letter after the wait",
        )
        assert rows[0]["reason"] == "unknown_type" and "EVENT_TASKS_UNKNOWN_TYPE_WAIT" in rows[0]["detail"]
        after = plat.send(PROBE_CREATED, {"n": 4})
        plat.wait_calls("alpha", after.id)
    finally:
        plat.stop_all()
