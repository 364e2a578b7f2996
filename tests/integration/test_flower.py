"""Flower, the Procfile's monitor, on our Celery app: one task per (event, service) from the
service workers' task events, each service's worker, retries and failures per service in its HTTP
API and its Prometheus ``/metrics``; basic auth required outside local settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from event_tasks.testing import wait_until
from tests.brokers import free_port
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT
from tests.integration.scrape import get, metric

pytestmark = pytest.mark.timeout(120)
AUTH = "ops:s3cret"


class Flower:
    """``celery -A config.celery_app flower`` as the Procfile runs it, on a free port."""

    def __init__(self, broker_url: str, log_dir: Path, settings: str = "config.settings.test", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"flower-{self.port}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": f"sqlite:///{log_dir}/flower.sqlite3",
            **env,
        }
        self.env.pop("EVENT_TASKS_SERVICE", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Flower:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config.celery_app",
                    "flower",
                    f"--port={self.port}",
                    "--address=127.0.0.1",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def wait_listening(self) -> None:
        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"flower exited with {self.process.returncode}: {self.log()}")
            return get(self.url + "/healthcheck")[0] == 200

        wait_until(listening, 60, 0.1, lambda: f"flower to listen; log: {self.log()}")

    def api(self, path: str) -> dict:
        status, body = get(self.url + path, AUTH)
        assert status == 200, f"{path}: HTTP {status}; flower log: {self.log()}"
        return json.loads(body)

    def metrics(self) -> str:
        return get(self.url + "/metrics")[1]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


def test_flower_refuses_to_start_without_auth_in_production(fresh_redis_url, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "CELERY_BROKER_URL": fresh_redis_url,
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "events.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    env.pop("FLOWER_BASIC_AUTH", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "flower",
            f"--port={free_port()}",
            "--address=127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "FLOWER_BASIC_AUTH (user:password) must be set in production" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def monitored(platform):
    """Services alpha and gamma (both consume PROBE_CREATED) watched by a Flower with basic auth."""
    flower = Flower(platform.broker_url, platform.dir, FLOWER_BASIC_AUTH=AUTH).start()
    for service in ("alpha", "gamma"):
        platform.worker(service).start(wait=False)
    try:
        flower.wait_listening()
        for service in ("alpha", "gamma"):
            platform.worker(service).wait_ready()
        # Flower has subscribed to the workers' events once their heartbeats show them online.
        wait_until(
            lambda: all(
                metric(flower.metrics(), "flower_worker_online", worker=f"{s}-*") == 1 for s in ("alpha", "gamma")
            ),
            30,
            0.2,
            lambda: f"flower to see both workers online; metrics: {flower.metrics()[-1500:]}",
        )
        yield platform, flower
    finally:
        flower.stop()


def test_flower_requires_basic_auth(monitored):
    _, flower = monitored
    for path in ("/", "/api/workers", "/api/tasks"):
        assert get(flower.url + path)[0] == 401, path
        assert get(flower.url + path, "ops:wrong")[0] == 401, path
        assert get(flower.url + path, AUTH)[0] == 200, path
    assert get(flower.url + "/metrics")[0] == 200  # Flower leaves /metrics open: keep it off the internet


def test_flower_shows_one_task_per_event_and_service(monitored):
    platform, flower = monitored
    ok = platform.send(PROBE_CREATED, {"n": 1})
    retried = platform.send(PROBE_CREATED, {"n": 2}, key="fail:alpha:1")  # alpha: fails once, then succeeds
    dead = platform.send(PROBE_CREATED, {"n": 3}, key="fail:gamma:always")  # gamma: retried, then dead-lettered
    expected = {
        f"{e.id}:{s}": state
        for e, s, state in [
            (ok, "alpha", "SUCCESS"),
            (ok, "gamma", "SUCCESS"),
            (retried, "alpha", "SUCCESS"),
            (retried, "gamma", "SUCCESS"),
            (dead, "alpha", "SUCCESS"),
            (dead, "gamma", "FAILURE"),
        ]
    }

    def settled() -> dict:
        tasks = flower.api("/api/tasks")
        return tasks if {t: tasks.get(t, {}).get("state") for t in expected} == expected else {}

    tasks = wait_until(
        settled,
        60,
        0.25,
        lambda: (
            f"flower's task states {expected}; got { {t: v.get('state') for t, v in flower.api('/api/tasks').items()} }"
        ),
    )
    ours = {t: v for t, v in tasks.items() if t in expected}
    assert {v["name"] for v in ours.values()} == {PROBE_CREATED}  # the event type is the task name
    for task_id, task in ours.items():
        service = task_id.rsplit(":", 1)[1]
        assert task["worker"].startswith(f"{service}-"), task  # each copy ran on its own service's worker
    assert tasks[f"{retried.id}:alpha"]["retries"] == 1
    assert tasks[f"{dead.id}:gamma"]["retries"] == 3  # EVENT_TASKS_MAX_RETRIES=3 in test settings
    assert "gamma fails attempt 4 on purpose" in tasks[f"{dead.id}:gamma"]["exception"]

    by_state = flower.api(f"/api/tasks?state=FAILURE&taskname={PROBE_CREATED}")
    assert f"{dead.id}:gamma" in by_state and f"{dead.id}:alpha" not in by_state

    workers = flower.api("/api/workers?refresh=1")
    assert {name.split("-", 1)[0] for name in workers} >= {"alpha", "gamma"}
    for name, info in workers.items():
        assert PROBE_CREATED in info["registered"], name  # its event tasks, by event type
        runs = {"alpha": 3 + 1, "gamma": 3 + 3}[name.split("-", 1)[0]]  # three events, plus each retry
        assert info["stats"]["total"] == {PROBE_CREATED: runs}, name

    # Flower's own Prometheus metrics: retries and failures per service (the worker label).
    def counted() -> str:
        text = flower.metrics()
        return text if metric(text, "flower_events_total", type="task-failed", worker="gamma-*") >= 1 else ""

    text = wait_until(counted, 20, 0.2, "flower_events_total to count gamma's failure")
    assert metric(text, "flower_events_total", type="task-retried", worker="alpha-*", task=PROBE_CREATED) == 1
    assert metric(text, "flower_events_total", type="task-retried", worker="gamma-*", task=PROBE_CREATED) == 3
    assert metric(text, "flower_events_total", type="task-failed", worker="alpha-*") == 0
    assert metric(text, "flower_events_total", type="task-succeeded", worker="gamma-*", task=PROBE_CREATED) == 2
