"""Worker subprocesses for the consume, latency and memory rows, and how to watch them drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CONSUMERS_PACKAGE = "bench.services"
SCHEMAS_PACKAGE = "schemas"


def fabric_env(service: str | None, broker_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of one of our services' processes (worker, manage.py)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "EVENT_TASKS_CONSUMERS_PACKAGE": CONSUMERS_PACKAGE,
        "EVENT_TASKS_SCHEMAS_PACKAGE": SCHEMAS_PACKAGE,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("EVENT_TASKS_SERVICE", None)
    for name in ("BENCH_DONE_AT", "BENCH_DONE_FILE", "BENCH_LATENCY_FILE", "BENCH_MODE"):
        if name not in extra:
            env.pop(name, None)
    if service:
        env["EVENT_TASKS_SERVICE"] = service
    return env


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def worker_command(app: str, queue: str, name: str) -> list[str]:
    """What both workers run: one process (-P solo), the same flags, Celery's default log level."""
    return [
        PY,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "-P",
        "solo",
        "-c",
        "1",
        "-n",
        f"{name}-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]


class Proc:
    """A subprocess in its own session, with its output in a log file; stopped by its PID."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.command = command
        self.cwd = cwd
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> Proc:
        out = open(self.log, "ab")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{' '.join(self.command[:6])} exited with {self.process.returncode}:\n{self.output()[-3000:]}"
            )

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def rss_kib(self) -> int:
        """Resident set size of the process (and its children: none with -P solo), from /proc."""
        total = 0
        for pid in [self.pid, *children(self.pid)]:
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        return []
    return kids + [g for k in kids for g in children(k)]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.005, proc: Proc | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None:
            proc.check()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f"; log tail:\n{proc.output()[-2000:]}" if proc else "")
            )
        time.sleep(interval)


def drain_redis_lists(
    client: Any,
    n: int,
    proc: Proc,
    *,
    queue: str,
    extra_lists: tuple[str, ...] = (),
    unacked: tuple[str, ...] = (),
    timeout: float = 300,
) -> float:
    """Seconds from the first message taken off ``queue`` until it, ``extra_lists`` and the
    ``unacked`` hashes are all empty (polled every 5 ms)."""

    def depth() -> tuple[int, int]:
        pipe = client.pipeline(transaction=False)
        pipe.llen(queue)
        for key in extra_lists:
            pipe.llen(key)
        for key in unacked:
            pipe.hlen(key)
        values = pipe.execute()
        return values[0], sum(values)

    start = wait_until(
        lambda: time.perf_counter() if depth()[0] < n else None,
        120,
        f"the first message of {queue}",
        interval=0.002,
        proc=proc,
    )
    end = wait_until(
        lambda: time.perf_counter() if depth()[1] == 0 else None,
        timeout,
        f"{queue} to drain",
        interval=0.005,
        proc=proc,
    )
    return end - start


def drain_stream(client: Any, stream: str, group: str, proc: Proc, timeout: float = 300) -> float:
    """Seconds from the first entry the group read until its lag and pending count are both 0."""

    def info() -> dict[str, Any] | None:
        try:
            groups = client.xinfo_groups(stream)
        except Exception:
            return None
        for g in groups:
            if g["name"] in (group, group.encode()):
                return g
        return None

    start = wait_until(
        lambda: time.perf_counter() if (info() or {}).get("entries-read") else None,
        120,
        f"the first entry of {stream}",
        interval=0.002,
        proc=proc,
    )
    end = wait_until(
        lambda: (
            time.perf_counter() if (lambda g: g is not None and g["lag"] == 0 and g["pending"] == 0)(info()) else None
        ),
        timeout,
        f"{stream} to drain",
        proc=proc,
    )
    return end - start
