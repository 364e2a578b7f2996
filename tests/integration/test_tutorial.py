"""docs/tutorial.md, run as a new user would: every file it shows written, every command it shows run.

The tutorial's code blocks are read in order: a Python block whose first line is ``# <path>``
writes that file (``# <path> (append)`` appends to it), and every line of a ``sh`` block runs
in the project's directory, in a fresh temporary folder, with this repository's virtualenv on
``PATH`` (the tutorial's ``python -m venv`` and ``pip install event-tasks`` lines are that
virtualenv) and a private Redis instead of the one on 6379. The ``celery ... worker`` line runs
in the background until the end; a line that ends in ``# fails`` must fail with one line and no
traceback. Then the worker's log must show what the tutorial says it shows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from event_tasks.testing import wait_until
from tests.integration.fabric import ROOT

pytestmark = [pytest.mark.timeout(300), pytest.mark.redis]

TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
THE_VIRTUALENV = ("python -m venv", "pip install")  # what the test's own virtualenv already is


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(TUTORIAL.read_text())]


def environment(broker_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVENT_TASKS_", "DJANGO_", "CELERY_")) and k not in ("PYTHONPATH", "DATABASE_URL")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env["CELERY_BROKER_URL"] = broker_url
    return env


def test_the_tutorial_works_as_written(tmp_path: Path, fresh_redis_url: str) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    env = environment(fresh_redis_url)
    worker: subprocess.Popen[bytes] | None = None
    log = tmp_path / "worker.log"
    ran: list[str] = []
    try:
        for language, body in blocks():
            first = body.splitlines()[0] if body.strip() else ""
            if language == "python" and first.startswith("# "):
                path = first[2:].split(" (")[0]
                target = project / path
                target.parent.mkdir(parents=True, exist_ok=True)
                code = body.split("\n", 1)[1]
                if first.endswith("(append)"):
                    target.write_text(target.read_text() + "\n" + code)
                else:
                    target.write_text(code)
                continue
            if language != "sh":
                continue
            for line in body.splitlines():
                command = line.strip()
                if not command or command.startswith("#") or command.startswith(THE_VIRTUALENV):
                    continue
                ran.append(command)
                if " celery " in f" {command} " and " worker" in command:
                    worker = subprocess.Popen(
                        ["bash", "-c", f"exec env {command}"],
                        cwd=project,
                        env=env,
                        stdout=log.open("wb"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    wait_until(
                        lambda: " ready." in log.read_text(errors="replace") or worker.poll() is not None,
                        90,
                        message=lambda: f"the worker to start: {log.read_text(errors='replace')[-3000:]}",
                    )
                    assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
                    continue
                out = subprocess.run(
                    ["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True, timeout=120
                )
                if command.endswith("# fails"):
                    assert out.returncode != 0, f"{command} should fail"
                    assert "Traceback" not in out.stderr, out.stderr[-3000:]
                    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
                else:
                    assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        assert worker is not None, "the tutorial starts a worker"
        assert any(c.startswith("python manage.py events send") for c in ran)

        def output() -> str:
            return log.read_text(errors="replace")

        wait_until(
            lambda: (
                output().count("mailer: order 4") >= 2 and "duplicates mailer.handlers.send_confirmation" in output()
            ),
            60,
            message=lambda: f"two orders mailed and one duplicate suppressed: {output()[-3000:]}",
        )
        assert output().count("mailer: order 42 confirmed to ada@example.com") == 1
        assert output().count("mailer: order 43 confirmed to bob@example.com") == 1  # sent twice, applied once
        assert "Traceback" not in output()
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
