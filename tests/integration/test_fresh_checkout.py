"""A fresh checkout works: a service's database can be migrated at once, its admin shows only what
lives in its database, and the whole platform runs locally with one command that keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from event_tasks.testing import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def env_for(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVENT_TASKS_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"))
    }
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings.local", "EVENT_TASKS_VAR_DIR": str(var_dir), **extra}


def test_a_service_migrates_where_no_var_folder_exists_yet(tmp_path):
    var_dir = tmp_path / "not" / "there" / "yet"
    out = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env_for(var_dir, EVENT_TASKS_SERVICE="lms"),
    )
    assert out.returncode == 0, out.stderr
    assert (var_dir / "lms.sqlite3").exists()


def test_a_services_admin_lists_only_its_own_models(tmp_path):
    code = """
import django; django.setup()
from django.contrib.auth.models import User
from django.test import Client
from django.core.management import call_command
call_command("migrate", verbosity=0)
User.objects.create_superuser("ops", "ops@example.com", "pw")
client = Client(); client.force_login(User.objects.get())
page = client.get("/admin/").content.decode()
print("lms" in page.lower(), "/admin/credentials/" in page, "/admin/discovery/" in page, "/admin/event_tasks/" in page)
print(client.get("/admin/lms/").status_code, client.get("/admin/credentials/").status_code)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env_for(tmp_path, EVENT_TASKS_SERVICE="lms", DJANGO_ALLOWED_HOSTS="testserver"),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False", "True", "200", "404"]


def test_make_platform_runs_release_then_keeps_every_process_running(tmp_path, fresh_redis_url):
    url = fresh_redis_url
    log = tmp_path / "platform.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "demo.platform", "worker_lms", "worker_discovery", "relay_studio"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env_for(tmp_path, CELERY_BROKER_URL=url),
        )
    try:
        text = lambda: log.read_text(errors="replace")  # noqa: E731
        wait_until(
            lambda: text().count(" ready.") >= 2 or proc.poll() is not None,
            120,
            0.2,
            lambda: f"two workers to be ready:\n{text()[-3000:]}",
        )
        assert proc.poll() is None, text()[-3000:]
        assert "release: declared events.lms" in text() and "release: declared events.discovery" in text()
        # honcho stops everything when one process exits (a one-shot release line did, 4 s after start).
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
