"""``events tail``: events live from a temporary queue that goes away on exit, and after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import redis as redis_lib

from event_tasks.testing import wait_until
from tests.brokers import rabbitmqctl
from tests.fabric.schemas.probe import CATALOG_PROBE, PROBE_CREATED, PROBE_UPDATED
from tests.integration.fabric import ROOT

pytestmark = pytest.mark.timeout(240)


class TailProcess:
    def __init__(self, plat, *args: str) -> None:
        env = {**os.environ, **plat.worker_env("tooling"), "DATABASE_URL": f"sqlite:///{plat.dir / 'tooling.sqlite3'}"}
        env.pop("EVENT_TASKS_SERVICE")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "events", "tail", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(iter(s.readline, "")), daemon=True).start()
        wait_until(
            lambda: any("listening on" in line for line in self.err) or self.process.poll() is not None,
            60,
            message=lambda: f"the tail to listen: {self.err}",
        )
        assert self.process.poll() is None, self.err
        self.queue = next(line for line in self.err if "listening on" in line).split()[2]


def tail_queues(plat) -> set[str]:
    """Tail queues on the broker, read with the broker's own tools."""
    if plat.broker_url.startswith("redis"):
        members = redis_lib.Redis.from_url(plat.broker_url).smembers("_kombu.binding.events")
        return {m.decode().split("\x06\x16")[2] for m in members if b"events.tail." in m}
    vhost = plat.broker_url.rsplit("/", 1)[1]
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "--quiet", "--no-table-headers")
    return {line.strip() for line in out.splitlines() if line.startswith("events.tail.")}


def test_tail_prints_matching_events_and_removes_its_queue(platform):
    tail = TailProcess(platform, "--type", "org.openedx.learning.#", "--json", "--count", "2")
    assert tail_queues(platform) == {tail.queue}
    created = platform.send(PROBE_CREATED, {"n": 1}, key="k-1")
    platform.send(CATALOG_PROBE, {"n": 2})  # does not match the pattern
    updated = platform.send(PROBE_UPDATED, {"n": 3})
    assert tail.process.wait(60) == 0, tail.err
    lines = [json.loads(line) for line in tail.out]
    assert [(e["envelope"]["id"], e["envelope"]["type"], e["data"]["n"]) for e in lines] == [
        (created.id, PROBE_CREATED, 1),
        (updated.id, PROBE_UPDATED, 3),
    ]
    assert lines[0]["envelope"]["key"] == "k-1" and lines[0]["envelope"]["source"] == "prober"
    assert any("removed" in line for line in tail.err)
    wait_until(lambda: not tail_queues(platform), 10, message="the tail's queue to go")


def test_text_output_and_sigterm(platform):
    tail = TailProcess(platform, "--type", PROBE_CREATED)
    event = platform.send(PROBE_CREATED, {"n": 4})
    wait_until(lambda: tail.out, 30, message="the tail's line")
    assert f"{PROBE_CREATED} id={event.id} source=prober" in tail.out[0] and '"n": 4' in tail.out[0]
    tail.process.send_signal(signal.SIGTERM)
    assert tail.process.wait(30) == 0, tail.err
    wait_until(lambda: not tail_queues(platform), 10, message="the tail's queue to go")


def test_a_killed_tail_leaves_nothing_behind(platform):
    tail = TailProcess(platform, "--type", "#", "--lease", "2")
    tail.process.kill()
    tail.process.wait(10)
    if platform.broker_url.startswith("rabbitmq") or platform.broker_url.startswith("amqp"):
        wait_until(lambda: not tail_queues(platform), 30, message="RabbitMQ to drop the exclusive queue")
        return
    client = redis_lib.Redis.from_url(platform.broker_url)
    assert tail_queues(platform) == {tail.queue}  # the binding outlived the process ...
    platform.send(PROBE_CREATED, {"n": 5})
    assert client.llen(tail.queue) == 1  # ... and collects copies until swept
    wait_until(lambda: not client.exists(f"_event_tasks.tail_alive.{tail.queue}"), 10, message="the lease to end")
    out = platform.tooling("events", "topology", "verify", "--json", "--service", "alpha", check=False)
    assert out.returncode == 1
    assert {
        "kind": "stale_binding",
        "queue": tail.queue,
        "routing_key": "#",
        "detail": "an `events tail` that is gone",
    } in json.loads(out.stdout)["drift"]
    platform.tooling("events", "declare", "--service", "alpha")  # any declare (deploy, worker start) sweeps it
    assert tail_queues(platform) == set() and not client.exists(tail.queue)
