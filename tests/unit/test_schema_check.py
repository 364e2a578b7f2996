"""Schema evolution: the committed snapshot of the catalog (schemas/catalog.json) is what CI checks
the code against; each kind of breaking change is named with its event type and field."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from event_tasks.ops.schema_check import breaking_changes, snapshot

ROOT = Path(__file__).resolve().parents[2]
T = "org.openedx.learning.certificate.created.v1"


def test_the_code_is_compatible_with_the_committed_snapshot():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "CELERY_BROKER_URL": "memory://"}
    env.pop("EVENT_TASKS_SERVICE", None)
    out = subprocess.run(
        [sys.executable, "manage.py", "events", "schema", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "compatible" in out.stdout


def test_each_breaking_change_is_named_and_an_optional_field_is_not():
    old = json.loads((ROOT / "schemas" / "catalog.json").read_text())
    assert breaking_changes(old, snapshot("schemas")) == []
    new = copy.deepcopy(old)
    cert = new[T]["fields"]["certificate"]["fields"]
    cert["extra_note"] = {"type": "String", "required": False}  # compatible
    assert breaking_changes(old, new) == []
    del cert["mode"]
    cert["download_url"]["type"] = "Integer"
    cert["user"]["fields"]["pii"]["fields"]["name"]["required"] = True
    new[T]["fields"]["reason"] = {"type": "String", "required": True}
    problems = breaking_changes(old, new)
    assert any("'certificate.mode' was removed" in p for p in problems)
    assert any("'certificate.download_url' changed from" in p for p in problems)
    assert any("'certificate.user.pii.name' became required" in p for p in problems)
    assert any("new field 'reason' is required" in p for p in problems)
    assert all(p.startswith(T + ":") and ".v2" in p for p in problems)


def test_a_removed_event_type_is_breaking():
    old = json.loads((ROOT / "schemas" / "catalog.json").read_text())
    new = {k: v for k, v in old.items() if k != T}
    assert [p for p in breaking_changes(old, new) if p.startswith(T)] == [
        f"{T}: the event type was removed; keep it until no producer sends it"
    ]
