"""``events metrics`` scraped over HTTP, against real brokers, a real worker and the services' real
databases: the figures Flower lacks follow what happens (a dead letter appears, events wait, a
duplicate is suppressed, an outbox row waits, a dead letter is discarded)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from event_tasks.testing import wait_until
from tests.brokers import free_port
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT
from tests.integration.scrape import get, metric

pytestmark = pytest.mark.timeout(180)


class Exporter:
    """``python manage.py events metrics --port N`` as an operator's tooling process (no service)."""

    def __init__(self, platform, databases: tuple[str, ...]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        env = {
            **os.environ,
            **platform.worker_env("tooling"),
            "DATABASE_URL": f"sqlite:///{platform.dir / 'tooling.sqlite3'}",
        }
        env.pop("EVENT_TASKS_SERVICE")
        for service in databases:
            platform.worker(service)  # its database file, migrated, even if its worker never starts
            env[f"{service.upper()}_DATABASE_URL"] = f"sqlite:///{platform.db_path(service)}"
        self.log_path = platform.dir / f"metrics-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "events",
                    "metrics",
                    "--port",
                    str(self.port),
                    *[a for s in databases for a in ("--service", s)],
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def scrape(self) -> str:
        status, body = get(self.url)
        if self.process.poll() is not None:
            raise RuntimeError(f"events metrics exited with {self.process.returncode}: {self.log()}")
        return body if status == 200 else ""

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


@pytest.fixture(scope="module")
def running(platform):
    platform.start("alpha")
    platform.manage("beta", "events", "declare")  # beta's queue, no worker: its events wait there
    return platform


def test_metrics_follow_dead_letters_backlog_duplicates_and_outbox(running):
    exporter = Exporter(running, ("alpha", "beta"))
    try:
        before = wait_until(exporter.scrape, 60, 0.2, lambda: f"events metrics to answer; log: {exporter.log()}")
        assert metric(before, "event_tasks_up") == 1
        assert metric(before, "event_tasks_dead_letters", service="alpha", reason="max_retries") == 0
        assert metric(before, "event_tasks_dead_letters", service="alpha", reason="worker_lost") == 0
        depth_before = metric(before, "event_tasks_queue_depth", service="beta", queue="events.beta")
        assert metric(before, "event_tasks_outbox_pending", service="beta") == 0
        assert metric(before, "event_tasks_duplicates_suppressed_total", service="alpha") == 0

        failing = running.send(PROBE_CREATED, {"n": 1}, key="fail:alpha:always")  # alpha dead-letters it
        twice = [running.producer().send(PROBE_CREATED, {"n": 2}, id=f"dup-{free_port()}")]
        twice.append(running.producer().send(PROBE_CREATED, {"n": 2}, id=twice[0].id))  # the same event again
        running.wait_calls("alpha", twice[0].id)
        running.manage(
            "beta",
            "shell",
            "-c",  # beta's relay is not running: one row waits, 5 s old
            "import datetime as dt\nfrom django.utils import timezone\n"
            "from event_tasks.models import OutboxEvent\n"
            f"row = OutboxEvent.objects.create(event_id='pending-1', event_type={PROBE_CREATED!r}, body='[]')\n"
            "OutboxEvent.objects.filter(pk=row.pk).update(created_at=timezone.now() - dt.timedelta(seconds=5))",
        )

        def changed() -> str:
            text = exporter.scrape()
            return (
                text
                if (
                    metric(text, "event_tasks_dead_letters", service="alpha", reason="max_retries") == 1
                    and metric(text, "event_tasks_duplicates_suppressed_total", service="alpha") == 1
                )
                else ""
            )

        after = wait_until(
            changed, 60, 0.3, lambda: f"the dead letter and the duplicate in {exporter.scrape()[-3000:]}"
        )
        assert metric(after, "event_tasks_queue_depth", service="beta", queue="events.beta") == depth_before + 3
        assert metric(after, "event_tasks_queue_depth", service="alpha", queue="events.alpha") == 0
        assert metric(after, "event_tasks_outbox_pending", service="beta") == 1
        assert metric(after, "event_tasks_outbox_oldest_age_seconds", service="beta") >= 5
        assert metric(after, "event_tasks_dead_letters", service="beta") == 0
        if running.broker_url.startswith("redis"):
            assert metric(after, "event_tasks_queue_oldest_age_seconds", service="beta") >= 0
        assert failing.id in running.manage("alpha", "events", "deadletters", "list")

        running.manage("alpha", "events", "deadletters", "discard", "--all", "--reason", "max_retries")
        wait_until(
            lambda: metric(exporter.scrape(), "event_tasks_dead_letters", service="alpha", reason="max_retries") == 0,
            30,
            0.3,
            "the discarded dead letter to leave the gauge",
        )
    finally:
        code = exporter.stop()
    assert code == 0, exporter.log()
    assert "metrics server stopped" in exporter.log()
