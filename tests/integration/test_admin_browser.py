"""The admin in a real browser: an operator replays a dead letter and sees it processed.

Service alpha runs for real (its worker on a private Redis, its SQLite database, its admin
served by ``manage.py runserver``); headless Chromium (Debian's ``chromium``, driven by
Playwright without a browser download) logs in, filters the dead letters by reason, replays one
with the admin action and finds the event among the processed events. Screenshots of each step
go to ``var/test-artifacts/admin-browser/`` (CI keeps that folder).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest
from kombu import Connection, Exchange, Producer

from event_tasks.brokers.message import encode_body, headers
from event_tasks.envelope import SPECVERSION
from event_tasks.testing import wait_until
from tests.brokers import free_port
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import ROOT, Platform
from tests.integration.scrape import get

pytestmark = pytest.mark.timeout(120)
ARTIFACTS = ROOT / "var" / "test-artifacts" / "admin-browser"
PASSWORD = "browser-test-pw"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "no chromium on PATH: `apt-get install -y chromium` (.ci/run installs it)"
    return path


def publish_invalid_payload(broker_url: str, queue: str) -> str:
    """A well-formed event whose payload breaks the schema: alpha dead-letters it as invalid_payload."""
    event_id = str(uuid.uuid4())
    envelope = {
        "id": event_id,
        "type": PROBE_CREATED,
        "source": "prober",
        "time": "2026-01-01T00:00:00Z",
        "specversion": SPECVERSION,
        "key": None,
    }
    body, argsrepr = encode_body(envelope, {"n": "seven"})
    with Connection(broker_url) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(""),
            routing_key=queue,
            delivery_mode=2,
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers(PROBE_CREATED, event_id, f"{event_id}:alpha", argsrepr),
        )
    return event_id


@pytest.fixture
def alpha_site(fresh_redis_url, workdir, probe_template_db):
    """Alpha's worker and alpha's admin (runserver) on one database and one broker."""
    platform = Platform(
        fresh_redis_url, workdir / f"admin-browser-{uuid.uuid4().hex[:6]}", template_db=probe_template_db
    )
    worker = platform.worker("alpha").start(wait=False)
    env = {**os.environ, **platform.worker_env("alpha"), "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "ops",
            "--email",
            "ops@example.com",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    log = open(platform.dir / "runserver.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: get(url + "/admin/login/")[0] == 200,
            60,
            0.1,
            lambda: f"runserver; log: {(platform.dir / 'runserver.log').read_text()[-2000:]}",
        )
        worker.wait_ready()
        yield platform, url
    finally:
        server.terminate()
        server.wait(20)
        log.close()
        platform.stop_all()


def test_operator_replays_a_dead_letter_in_the_admin(alpha_site):
    from playwright.sync_api import expect, sync_playwright

    platform, url = alpha_site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    blocked = platform.dir / "blocked-alpha"  # alpha's handler fails while this file exists
    blocked.touch()
    event = platform.send(PROBE_CREATED, {"n": 7}, key="blocked:alpha:x")
    invalid_id = publish_invalid_payload(platform.broker_url, "events.alpha")
    wait_until(
        lambda: {r["reason"] for r in platform.dead_letters("alpha")} == {"max_retries", "invalid_payload"},
        30,
        0.1,
        lambda: f"two dead letters; have {[dict(r) for r in platform.dead_letters('alpha')]}",
    )
    assert not platform.processed("alpha", event.id)
    blocked.unlink()  # the cause is fixed: now the replay can succeed

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(url + "/admin/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#user-tools")).to_contain_text("ops")

        page.goto(url + "/admin/event_tasks/deadletter/")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(2)
        page.locator("#changelist-filter").get_by_role("link", name="handler failed on every attempt").click()
        expect(page).to_have_url(re.compile(r"reason__exact=max_retries"))
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(event.id)
        expect(page.locator("#result_list")).not_to_contain_text(invalid_id)
        page.screenshot(path=str(ARTIFACTS / "1-dead-letters-by-reason.png"), full_page=True)

        rows.first.locator("input.action-select").check()
        page.select_option("select[name=action]", "replay")
        page.locator("button[name=index]").click()
        expect(page.locator("ul.messagelist")).to_contain_text("replayed to events.alpha")
        page.screenshot(path=str(ARTIFACTS / "2-replayed.png"), full_page=True)

        wait_until(
            lambda: platform.processed("alpha", event.id),
            30,
            0.1,
            lambda: f"alpha to process the replayed event; log: {platform.workers['alpha'].output()[-2000:]}",
        )
        page.goto(url + f"/admin/event_tasks/processedevent/?q={event.id}")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        expect(page.locator("#result_list")).to_contain_text(event.id)
        page.screenshot(path=str(ARTIFACTS / "3-processed.png"), full_page=True)

        page.goto(url + "/admin/event_tasks/deadletter/?reason__exact=max_retries")
        expect(page.locator("#result_list tbody tr").first.locator("td.field-replays")).to_have_text("1")
        browser.close()

    assert platform.calls("alpha", event.id) == 4 + 1  # four failed attempts, then the replay
    for shot in ("1-dead-letters-by-reason.png", "2-replayed.png", "3-processed.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000, shot
