"""Helpers for testing services built on event-tasks (shipped to users).

* :func:`make_event` builds an :class:`~event_tasks.Event` exactly as a worker would hand it to
  a handler (validated, JSON round-tripped), so handlers can be called directly;
* :func:`wait_until` polls a condition with a timeout instead of sleeping;
* :class:`ServiceWorker` runs one service's real Celery worker in a subprocess.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time as _time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import catalog
from .envelope import Event

T = TypeVar("T")


def make_event(event_type: str, data: Mapping[str, Any], *, key: str | None = None,
               source: str = "test", id: str | None = None, time: dt.datetime | None = None) -> Event:
    """An event of ``event_type`` as a consuming worker would see it (raises like ``send_event``)."""
    entry = catalog.get(event_type)
    _, wire = entry.encode(data)
    loaded = entry.decode(json.loads(json.dumps(wire)))
    return Event(id=id or str(uuid.uuid4()), type=event_type, source=source,
                 time=time or dt.datetime.now(dt.timezone.utc), key=key, data=loaded)


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
               message: str | Callable[[], str] = "condition") -> T:
    """Return ``predicate()`` as soon as it is truthy; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = _time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if _time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout}s waiting for {text}")
        _time.sleep(interval)


class ServiceWorker:
    """One service's real Celery worker in a subprocess (what the Procfile runs), for tests.

    ``env`` is added to the current environment (``CELERY_BROKER_URL``, ``DATABASE_URL``,
    ``DJANGO_SETTINGS_MODULE`` …). The worker consumes only ``events.<service>``.
    """

    def __init__(self, service: str, *, env: Mapping[str, str], log_dir: str,
                 app: str = "config.celery_app", pool: str = "solo", concurrency: int = 1,
                 queue_prefix: str = "events.", extra_args: tuple[str, ...] = ()) -> None:
        self.service = service
        self.env = dict(env)
        self.app = app
        self.pool = pool
        self.concurrency = concurrency
        self.queue = f"{queue_prefix}{service}"
        self.extra_args = extra_args
        self.log_path = os.path.join(log_dir, f"worker-{service}-{uuid.uuid4().hex[:8]}.log")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", self.queue,
                "-P", self.pool, "-c", str(self.concurrency), "-n", f"{self.service}-{uuid.uuid4().hex[:6]}@%h",
                "--without-gossip", "--without-mingle", "-l", "INFO", "-f", self.log_path,
                *self.extra_args]

    def start(self, wait: bool = True, timeout: float = 60.0) -> ServiceWorker:
        if self.running:
            raise RuntimeError(f"worker {self.service} already running")
        env = {**os.environ, **self.env, "EVENT_TASKS_SERVICE": self.service}
        self._ready_marks = self.log().count(" ready.")
        out = open(self.log_path + ".out", "ab")
        self.process = subprocess.Popen(self.command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        out.close()
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker {self.service} exited with {self.process.returncode}:\n{self.output()[-4000:]}")
            return self.log().count(" ready.") > self._ready_marks

        wait_until(ready, timeout, 0.05, f"worker {self.service} to be ready")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM: finish the current task), then SIGKILL if it hangs."""
        if not self.running:
            return None
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the worker and its pool children: nothing gets to clean up or ack."""
        if self.process is None:
            return None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.wait(10)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        try:
            with open(self.log_path + ".out", encoding="utf-8", errors="replace") as fh:
                return self.log() + fh.read()
        except FileNotFoundError:
            return self.log()

    def __enter__(self) -> ServiceWorker:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
