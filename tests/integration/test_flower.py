"""Flower, the Procfile's monitor, runs on our Celery app and asks for basic auth when configured."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from event_tasks.testing import wait_until
from tests.brokers import free_port
from tests.integration.fabric import ROOT

pytestmark = pytest.mark.timeout(120)


def get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_flower_requires_basic_auth(fresh_redis_url, tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "CELERY_BROKER_URL": fresh_redis_url,
           "FLOWER_BASIC_AUTH": "ops:s3cret", "DATABASE_URL": f"sqlite:///{tmp_path}/flower.db"}
    env.pop("EVENT_TASKS_SERVICE", None)
    log = open(tmp_path / "flower.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config.celery_app", "flower",
                             f"--port={port}", "--address=127.0.0.1"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: get(url) != 0, 60, 0.2,
                   lambda: f"flower to listen; log: {(tmp_path / 'flower.log').read_text()[-2000:]}")
        assert get(url) == 401
        assert get(url, "ops:wrong") == 401
        assert get(url, "ops:s3cret") == 200
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
