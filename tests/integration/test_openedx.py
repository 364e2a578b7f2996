"""The openedx-events backend on real brokers: real signals from a producer process to receivers in
consumer processes (tests/fabric/openedx: settings, receivers, data).

* the producer is a Django process of service ``lms`` that sends CERTIFICATE_CREATED,
  COURSE_CATALOG_INFO_CHANGED, COURSE_ENROLLMENT_CHANGED and EXAM_ATTEMPT_SUBMITTED with
  ``send_event`` as any Open edX service does (``EVENT_BUS_PRODUCER_CONFIG`` → our producer; one of
  them inside ``transaction.atomic()``, through the outbox); its own receivers record what they got;
* ``credentials`` consumes with ``manage.py consume_events -t … -g credentials`` (openedx-events'
  command, ``EVENT_BUS_CONSUMER``), ``discovery`` with a plain ``celery worker -Q events.discovery``;
  both must get every signal with the data and metadata the producer's receivers got;
* a receiver that raises is retried and then dead-lettered, in its service only;
* ``lms`` signs what it sends (the direct sends and the one through the outbox) and both consumers
  enforce signatures: a signal that reaches a receiver passed the check; one forged, a dead letter.
"""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
import textwrap

import pytest

from event_tasks.testing import make_test_keys, wait_until
from tests.integration.fabric import ROOT, Platform, migrate

pytestmark = pytest.mark.timeout(240)

SETTINGS = "tests.fabric.openedx.settings"
KEYS = make_test_keys("lms", "discovery")
ENV = {
    **KEYS.env("lms", "enforce"),  # every process checks signatures; lms (the only producer) signs with its key
    "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.openedx",
    "EVENT_TASKS_SCHEMAS_PACKAGE": "event_tasks.openedx.catalog",
    "DJANGO_SETTINGS_MODULE": SETTINGS,
}
TYPES = [
    "org.openedx.learning.certificate.created.v1",
    "org.openedx.content_authoring.course.catalog_info.changed.v1",
    "org.openedx.learning.course.enrollment.changed.v1",
    "org.openedx.learning.exam.attempt.submitted.v1",
]

SEND = textwrap.dedent("""
    import json, sys, django
    django.setup()
    from django.db import transaction
    from tests.fabric.openedx.data import signals_and_data
    n = int(sys.argv[1])
    for i, (signal, data) in enumerate(signals_and_data(n)):
        if i == 0:
            with transaction.atomic():          # through the outbox, out after commit
                responses = signal.send_event(**data)
        else:
            responses = signal.send_event(**data)
        failed = [repr(r) for _, r in responses if isinstance(r, BaseException)]
        assert not failed, failed
    from event_tasks.send.publisher import default_publisher
    print(json.dumps(dict(default_publisher().stats)))
""")


class OpenedxPlatform(Platform):
    def env_of(self, service: str) -> dict[str, str]:
        return {**os.environ, **self.worker_env(service), "DJANGO_SETTINGS_MODULE": SETTINGS}

    def produce(self, n: int, service: str = "lms") -> dict[str, int]:
        db = self.db_path(service)
        if not db.exists():
            migrate(db, self.env, service)
        out = subprocess.run(
            [sys.executable, "-c", SEND, str(n)],
            cwd=ROOT,
            env={**self.env_of(service), **KEYS.env(service, "enforce")},  # signed with the sender's own key
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-4000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def received(self, service: str) -> list[dict]:
        path = self.dir / f"{service}.openedx.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def of(self, service: str, course_run: int) -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for r in self.received(service):
            if json.dumps(r["data"]).count(f"2026_{course_run}") and r["from_event_bus"] == (service != "lms"):
                found.setdefault(r["event_type"], []).append(r)
        return found


class ConsumeEvents:
    """``manage.py consume_events -t TOPIC -g GROUP`` in a subprocess (openedx-events' command)."""

    def __init__(self, platform: OpenedxPlatform, group: str, topic: str) -> None:
        platform.worker(group)  # its database (migrated); the worker itself is not started
        self.log = platform.dir / f"consume-{group}.log"
        env = platform.env_of(group)
        env.pop("EVENT_TASKS_SERVICE")  # the group names the service
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "consume_events",
                "-t",
                topic,
                "-g",
                group,
                "--extra",
                json.dumps({"loglevel": "INFO", "pool": "solo", "check_backlog": True}),
            ],
            cwd=ROOT,
            env=env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.ready, 60, 0.1, lambda: f"consume_events to start; log: {self.output()[-3000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready(self) -> bool:
        assert self.process.poll() is None, self.output()[-4000:]
        return " ready." in self.output()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signals.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signals.SIGKILL)
                self.process.wait(10)


@pytest.fixture(scope="module")
def openedx(broker_url, workdir):
    name = f"openedx-{broker_url.split(':', 1)[0]}"
    plat = OpenedxPlatform(broker_url, workdir / name, env=ENV)
    raising = {
        "TEST_OPENEDX_RAISE": "org.openedx.learning.exam.attempt.submitted.v1",
        "DJANGO_SETTINGS_MODULE": SETTINGS,
    }
    plat.worker("discovery", env=raising)
    consumer = ConsumeEvents(plat, "credentials", "learning-certificate-lifecycle")
    plat.start("discovery")
    yield plat
    consumer.stop()
    plat.stop_all()


def test_signals_round_trip_to_every_consuming_service(openedx):
    stats = openedx.produce(1)
    assert stats.get("outboxed") == 1 and stats.get("published") == 4, stats
    sent = openedx.of("lms", 1)  # what the producer's own receivers got
    assert sorted(sent) == sorted(TYPES) and all(len(v) == 1 for v in sent.values())
    for service in ("credentials", "discovery"):  # each consuming service gets its own copy
        got = wait_until(
            lambda: (lambda g: g if sorted(g) == sorted(TYPES) else None)(openedx.of(service, 1)),
            60,
            message=lambda: f"{service} to receive all four; has {sorted(openedx.of(service, 1))}",
        )
        for event_type in TYPES:
            first = got[event_type][0]
            original = sent[event_type][0]
            assert first["metadata"] == original["metadata"], event_type  # id, time, source, sourcelib …
            assert first["data"] == original["data"] and first["repr"] == original["repr"], event_type
            assert first["pid"] != original["pid"]
        event_id = sent[TYPES[0]][0]["metadata"]["id"]
        rows = openedx.processed(service, event_id)  # duplicate suppression keyed on the signal's id
        assert [r["handler"] for r in rows] == ["event_tasks.openedx.reemit"]
    # credentials' receivers never raise: one call each, no dead letter
    assert all(len(v) == 1 for v in openedx.of("credentials", 1).values())
    assert not openedx.dead_letters("credentials")


def test_a_raising_receiver_is_retried_then_dead_lettered(openedx):
    openedx.produce(2)
    exam = "org.openedx.learning.exam.attempt.submitted.v1"
    event_id = openedx.of("lms", 2)[exam][0]["metadata"]["id"]
    rows = wait_until(
        lambda: [r for r in openedx.dead_letters("discovery") if r["event_id"] == event_id],
        60,
        message="discovery's dead letter of the exam attempt",
    )
    assert rows[0]["reason"] == "max_retries" and rows[0]["attempts"] == 4  # EVENT_TASKS_MAX_RETRIES=3
    assert "receiver of org.openedx.learning.exam.attempt.submitted.v1 fails on purpose" in rows[0]["detail"]
    assert len(openedx.of("discovery", 2)[exam]) == 4  # the first run and 3 retries
    assert not openedx.processed("discovery", event_id)
    wait_until(lambda: exam in openedx.of("credentials", 2), 30, message="credentials' copy")
    assert len(openedx.of("credentials", 2)[exam]) == 1  # the other service is untouched
    assert not openedx.dead_letters("credentials")


def test_a_signal_signed_by_a_service_that_does_not_own_it_is_a_dead_letter(openedx):
    """discovery sends the Open edX signals with its own valid key: no consumer runs them."""
    openedx.produce(3, service="discovery")
    cert = "org.openedx.learning.certificate.created.v1"
    sent = [r for r in openedx.received("discovery") if not r["from_event_bus"] and "2026_3" in json.dumps(r["data"])]
    event_id = next(r["metadata"]["id"] for r in sent if r["event_type"] == cert)
    rows = wait_until(
        lambda: [r for r in openedx.dead_letters("credentials") if r["event_id"] == event_id],
        60,
        message=lambda: f"credentials' dead letter of {event_id}; has {openedx.dead_letters('credentials')}",
    )
    assert rows[0]["reason"] == "not_owner" and "'discovery'" in rows[0]["detail"]
    assert cert not in openedx.of("credentials", 3)  # its receivers never ran
