"""Endpoint authentication outside local settings: ``events metrics`` behind HTTP basic auth (401 without
or with wrong credentials, 200 with the right ones, served for real on a free port), its refusal to start
without credentials where they are required, and the production settings' one-line refusals.
(Flower's basic auth, as the Procfile starts it: tests/integration/test_flower.py.)"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import override_settings

from event_tasks import conf
from event_tasks.errors import EndpointAuthMissing
from event_tasks.ops.metrics import StatusCollector, credentials, serve
from tests.unit.test_metrics import STATUS

ROOT = Path(__file__).resolve().parents[2]
AUTH = "ops:s3cret"


def get(url: str, authorization: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.fixture
def served(request):
    server = serve(
        StatusCollector(read=lambda *a, **k: STATUS, read_duplicates=lambda alias: {}), 0, auth=request.param
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("served", [AUTH], indirect=True)
def test_metrics_refuse_requests_without_the_right_credentials(served):
    for header in (None, basic("ops:wrong"), basic("other:s3cret"), basic(AUTH + "x"), "Basic !!!", "Bearer s3cret"):
        status, headers, body = get(served, header)
        assert status == 401, header
        assert headers["WWW-Authenticate"] == 'Basic realm="metrics"'
        assert "event_tasks_" not in body
    status, _, body = get(served, basic(AUTH))
    assert status == 200 and "event_tasks_queue_depth" in body


@pytest.mark.parametrize("served", [None], indirect=True)
def test_metrics_without_credentials_configured_answer_everyone(served):
    assert get(served)[0] == 200


def credentials_with(**overrides: object) -> str | None:
    conf.settings.cache_clear()
    try:
        with override_settings(**overrides):
            return credentials()
    finally:
        conf.settings.cache_clear()


def test_credentials_are_required_only_where_settings_say_so():
    assert credentials_with(EVENT_TASKS_METRICS_AUTH=None, EVENT_TASKS_REQUIRE_ENDPOINT_AUTH=False) is None
    assert credentials_with(EVENT_TASKS_METRICS_AUTH=AUTH, EVENT_TASKS_REQUIRE_ENDPOINT_AUTH=True) == AUTH
    with pytest.raises(EndpointAuthMissing, match="EVENT_TASKS_METRICS_AUTH is not set"):
        credentials_with(EVENT_TASKS_METRICS_AUTH=None, EVENT_TASKS_REQUIRE_ENDPOINT_AUTH=True)
    for malformed in ("ops", "ops:", ":s3cret"):
        with pytest.raises(EndpointAuthMissing, match="is not 'user:password'"):
            credentials_with(EVENT_TASKS_METRICS_AUTH=malformed)


def production(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "events.example.org",
        "CELERY_BROKER_URL": "memory://",
        "DATABASE_URL": f"sqlite:///{tmp_path}/tooling.sqlite3",
        "FLOWER_BASIC_AUTH": AUTH,
        "EVENT_TASKS_SCHEMAS_PACKAGE": "tests.fabric.schemas",
        "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.services",
    }
    for name in ("EVENT_TASKS_SERVICE", "EVENT_TASKS_METRICS_AUTH", "EVENT_TASKS_METRICS_AUTH_FILE"):
        env.pop(name, None)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_events_metrics_in_production_refuses_to_start_without_credentials(tmp_path):
    done = run([sys.executable, "manage.py", "events", "metrics", "--port", "0"], production(tmp_path))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    # the error is one line; lines before it may only be Django's system-check warnings (W002, W003 here: these
    # production settings do not enforce signatures and have no metrics credentials)
    *before, last = done.stderr.strip().splitlines()
    assert "events metrics refuses to start: EVENT_TASKS_METRICS_AUTH is not set" in last
    assert all("refuses to start" not in line for line in before)
    assert not before or before[0] == "System check identified some issues:"
    assert "serving" not in done.stdout


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL", "FLOWER_BASIC_AUTH"]
)
def test_production_settings_refuse_to_start_without_a_secret_in_one_line(tmp_path, missing):
    done = run([sys.executable, "manage.py", "check"], production(tmp_path, **{missing: None}))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line, no traceback
    assert done.stderr.startswith(f"config.settings.production: {missing}")


def test_production_secrets_come_from_files_and_debug_stays_off(tmp_path):
    (tmp_path / "key").write_text("k" * 50 + "\n")
    (tmp_path / "metrics").write_text(AUTH + "\n")
    env = production(
        tmp_path,
        DJANGO_SECRET_KEY=None,
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
        EVENT_TASKS_METRICS_AUTH_FILE=str(tmp_path / "metrics"),
        DJANGO_DEBUG="true",
    )
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECRET_KEY == 'k' * 50, s.DEBUG, s.ALLOWED_HOSTS, s.EVENT_TASKS_METRICS_AUTH)"
    )
    done = run([sys.executable, "-c", code], env)
    assert done.stdout.split("\n")[0] == f"True False ['events.example.org'] {AUTH}", done.stderr
