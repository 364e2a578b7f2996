"""Delivery on real brokers with real workers: fan-out, isolation, late subscribers, fresh producers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.fabric.schemas.probe import CATALOG_PROBE, PROBE_CREATED, PROBE_UPDATED
from tests.integration.fabric import ROOT

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def running(platform):
    platform.start("alpha", "beta", "gamma", "delta")
    return platform


def test_one_event_reaches_each_subscribed_service_once(running):
    event = running.send(PROBE_CREATED, {"n": 1})
    for service in ("alpha", "beta", "gamma"):
        running.wait_calls(service, event.id)
    # A marker through every queue: anything else for these services was queued before it.
    marker = running.send(PROBE_CREATED, {"n": 2})
    for service in ("alpha", "beta", "gamma"):
        running.wait_calls(service, marker.id)
    assert [running.calls(s, event.id) for s in ("alpha", "beta", "gamma")] == [1, 1, 1]
    assert running.calls("delta", event.id) == 0
    seen = next(r for r in running.seen("gamma") if r["id"] == event.id)
    assert seen["type"] == PROBE_CREATED and seen["source"] == "prober" and seen["n"] == 1


def test_each_copy_has_its_own_task_id_and_duplicate_mark_and_no_result_row(running):
    from event_tasks.testing import wait_until

    event = running.send(PROBE_CREATED, {"n": 3})
    for service in ("alpha", "beta", "gamma"):
        running.wait_calls(service, event.id)
    for service in ("alpha", "beta", "gamma"):
        marks = wait_until(lambda: running.processed(service, event.id), 20, message=f"{service}'s duplicate mark")
        assert [(m["service"], m["event_type"]) for m in marks] == [(service, PROBE_CREATED)]
        wait_until(
            lambda: f"[{event.id}:{service}] succeeded" in running.worker(service).log(),
            20,
            message=f"{service}'s task {event.id}:{service} succeeded",
        )
        # a delivery that succeeds at once stores nothing but its mark (results: failures and retries)
        assert running.results(service, event.id) == []


def test_unsubscribed_service_never_sees_the_type(running):
    learning = running.send(PROBE_UPDATED, {"n": 4})
    catalog_event = running.send(CATALOG_PROBE, {"n": 5})
    running.wait_calls("gamma", learning.id)  # pattern subscriber gets the other type
    running.wait_calls("delta", catalog_event.id)  # delta's own type arrives ...
    marker = running.send(PROBE_CREATED, {"n": 6})
    running.wait_calls("alpha", marker.id)
    assert running.calls("alpha", learning.id) == 0  # exact subscribers of another type do not
    assert running.calls("beta", learning.id) == 0
    assert running.calls("delta", learning.id) == 0  # ... and nothing else
    assert running.calls("gamma", catalog_event.id) == 0


def test_stopped_service_gets_its_events_when_it_starts(running):
    beta = running.worker("beta")
    beta.stop()
    events = [running.send(PROBE_CREATED, {"n": 100 + i}) for i in range(5)]
    for e in events:
        running.wait_calls("alpha", e.id)
    assert all(running.calls("beta", e.id) == 0 for e in events)
    beta.start()
    for e in events:
        running.wait_calls("beta", e.id)
    assert [running.calls("beta", e.id) for e in events] == [1] * 5


def test_producer_in_a_fresh_process_delivers(running):
    script = textwrap.dedent("""
        from celery import Celery
        import django, sys
        django.setup()
        from event_tasks import catalog
        from event_tasks.app import install
        from event_tasks.send.publisher import Publisher
        catalog.load("tests.fabric.schemas")
        app = Celery("fresh", broker=sys.argv[1], set_as_current=False)
        install(app)
        print(Publisher(app, "prober").send(sys.argv[2], {"n": 7}).id)
    """)
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script, running.broker_url, PROBE_CREATED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    event_id = out.stdout.strip().splitlines()[-1]
    for service in ("alpha", "beta", "gamma"):
        running.wait_calls(service, event_id)


def test_service_that_subscribes_while_producer_runs_gets_next_events(running):
    before = running.send(PROBE_CREATED, {"n": 8})
    running.wait_calls("alpha", before.id)
    epsilon = running.worker("epsilon")
    epsilon.start()  # declares its queue and binding; the producer is not restarted
    after = running.send(PROBE_CREATED, {"n": 9})
    running.wait_calls("epsilon", after.id)
    assert running.calls("epsilon", before.id) == 0
    epsilon.stop()
