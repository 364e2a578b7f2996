"""The fabric's Django system checks (``event_tasks.checks``): each problem, its id, message and hint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings as django_settings
from django.core.checks import Error, run_checks
from django.test import override_settings

from event_tasks import checks
from event_tasks.send import publisher

ROOT = Path(__file__).resolve().parents[2]


def fabric_findings() -> list[Error]:
    """Everything Django's check framework reports under the fabric's ids (the checks are registered)."""
    return [m for m in run_checks() if m.id and m.id.startswith("event_tasks.")]


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_every_check_id_is_in_docs_settings_md():
    found = set(re.findall(r"event_tasks\.E\d{3}", Path(checks.__file__).read_text()))
    assert len(found) == 7
    assert found <= set(re.findall(r"event_tasks\.E\d{3}", (ROOT / "docs" / "settings.md").read_text()))


def test_the_repositorys_settings_pass_every_check():
    assert fabric_findings() == []


def test_a_misspelt_setting_is_reported_with_the_closest_name():
    with override_settings(EVENT_TASKS_SERVCE="lms", EVENT_TASKS_XYZZY_PLUGH=1):
        found = checks.check_setting_names()
        assert sorted(ids(fabric_findings())) == ["event_tasks.E001", "event_tasks.E001"]
    by_msg = {m.msg: m.hint for m in found}
    assert by_msg == {
        "EVENT_TASKS_XYZZY_PLUGH is not an event-tasks setting": (
            "Remove it, or use one of the settings event-tasks reads (every setting: docs/settings.md)."
        ),
        "EVENT_TASKS_SERVCE is not an event-tasks setting: did you mean EVENT_TASKS_SERVICE?": (
            "Rename it to EVENT_TASKS_SERVICE: a misspelt setting is ignored (every setting: docs/settings.md)."
        ),
    }
    assert all(m.is_serious() for m in found)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("EVENT_TASKS_MAX_RETRIES", "ten", "int"),
        ("EVENT_TASKS_MAX_RETRIES", False, "int"),
        ("EVENT_TASKS_REQUIRE_DURABLE_BROKER", 1, "bool"),
        ("EVENT_TASKS_OUTBOX_LEASE", "60", "float"),
        ("EVENT_TASKS_OPENEDX_SIGNALS", [1, 2], "list of str"),
        ("EVENT_TASKS_SERVICE_DATABASES", ["lms"], "dict of str to str or None"),
    ],
)
def test_a_value_of_the_wrong_type_is_reported(name, value, expected):
    with override_settings(**{name: value}):
        found = checks.check_setting_types()
    assert [(m.id, m.msg) for m in found] == [
        ("event_tasks.E002", f"{name} must be {expected}, not {type(value).__name__} ({value!r})")
    ]
    assert found[0].hint.startswith(f"Give {name} a value of type {expected} (default: ")


def test_values_the_types_allow_are_not_reported():
    with override_settings(
        EVENT_TASKS_RETRY_BACKOFF=1,
        EVENT_TASKS_OPENEDX_SIGNALS=["org.openedx.learning.#"],
        EVENT_TASKS_SCHEMAS_PACKAGE=["schemas", "tests.fabric.schemas"],
        EVENT_TASKS_VISIBILITY_TIMEOUT=None,
    ):
        assert checks.check_setting_types() == []
        assert checks.check_catalog() == []


def test_a_broker_the_fabric_does_not_run_on_is_reported(monkeypatch):
    with override_settings(CELERY_BROKER_URL="sqs://key:secret@"):
        found = checks.check_broker()
    assert ids(found) == ["event_tasks.E003"]
    assert found[0].msg.startswith("Unsupported broker 'sqs' in CELERY_BROKER_URL")
    assert "secret" not in found[0].msg + found[0].hint
    assert found[0].hint.startswith("Point CELERY_BROKER_URL at a Redis (redis://")
    for url in ("redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1//", "memory://"):
        with override_settings(CELERY_BROKER_URL=url):
            assert checks.check_broker() == [], url


def test_the_installed_celery_apps_broker_is_checked_too(monkeypatch):
    app = Celery("billing", broker="kafka://127.0.0.1:9092", set_as_current=False)
    monkeypatch.setattr(publisher, "_apps", [app])  # as install(app) leaves it, without touching the process's
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:6379/0"):
        found = checks.check_broker()
    assert ids(found) == ["event_tasks.E003"]
    assert "'kafka'" in found[0].msg and "the Celery app 'billing''s broker_url" in found[0].msg


def test_a_missing_catalog_is_reported():
    with override_settings():
        del django_settings.EVENT_TASKS_SCHEMAS_PACKAGE
        found = checks.check_catalog()
        assert ids(fabric_findings()) == ["event_tasks.E004"]
    assert found[0].msg.startswith("EVENT_TASKS_SCHEMAS_PACKAGE is not set")
    assert "'myplatform.events'" in found[0].hint


def test_a_catalog_that_does_not_import_is_reported(tmp_path, monkeypatch):
    with override_settings(EVENT_TASKS_SCHEMAS_PACKAGE=["schemas", "no_such_catalog_pkg"]):
        found = checks.check_catalog()
    assert [(m.id, m.msg) for m in found] == [
        (
            "event_tasks.E005",
            "EVENT_TASKS_SCHEMAS_PACKAGE: the catalog package 'no_such_catalog_pkg' does not import "
            "(ModuleNotFoundError: No module named 'no_such_catalog_pkg')",
        )
    ]
    broken = tmp_path / "broken_catalog"
    broken.mkdir()
    (broken / "__init__.py").write_text("")
    (broken / "things.py").write_text("raise RuntimeError('a bug in the catalog')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_settings(EVENT_TASKS_SCHEMAS_PACKAGE="broken_catalog"):
        found = checks.check_catalog()
    assert ids(found) == ["event_tasks.E005"] and "(RuntimeError: a bug in the catalog)" in found[0].msg


def test_a_catalog_setting_of_the_wrong_type_is_reported_once():
    with override_settings(EVENT_TASKS_SCHEMAS_PACKAGE=5):
        assert ids(fabric_findings()) == ["event_tasks.E002"]


@pytest.mark.parametrize("service", ["Not-A-Name", "lms!", "1lms", "x" * 64])
def test_a_malformed_service_is_reported(service):
    with override_settings(EVENT_TASKS_SERVICE=service):
        found = checks.check_service()
    assert [(m.id, m.msg) for m in found] == [
        ("event_tasks.E006", f"EVENT_TASKS_SERVICE = {service!r} is not a service name")
    ]
    assert "lower-case letters, digits and underscores" in found[0].hint


@pytest.mark.parametrize("service", ["lms", "license_manager", None])
def test_a_service_name_or_none_is_fine(service):
    with override_settings(EVENT_TASKS_SERVICE=service):
        assert checks.check_service() == []


def test_manage_py_check_fails_on_a_misspelt_setting(tmp_path):
    (tmp_path / "typo_settings.py").write_text(
        'from config.settings.test import *  # noqa: F403\n\nEVENT_TASKS_SERVCE = "lms"\n'
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "typo_settings",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "CELERY_BROKER_URL": "memory://",
    }
    out = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert out.returncode != 0
    assert (
        "(event_tasks.E001) EVENT_TASKS_SERVCE is not an event-tasks setting: did you mean EVENT_TASKS_SERVICE?"
        in out.stderr
    )
    assert "HINT: Rename it to EVENT_TASKS_SERVICE" in out.stderr
    assert "Traceback" not in out.stderr


CLUSTER = "amqp://guest:guest@n1:5672//;amqp://guest:guest@n2:5672//;amqp://guest:guest@n3:5672//"


def test_a_rabbitmq_cluster_with_classic_queues_is_a_warning():
    with override_settings(CELERY_BROKER_URL=CLUSTER):
        found = checks.check_broker()
    assert ids(found) == ["event_tasks.W001"]
    assert "lists 3 RabbitMQ nodes" in found[0].msg and 'EVENT_TASKS_QUEUE_TYPE = "quorum"' in found[0].hint


@pytest.mark.parametrize(
    ("url", "queue_type"),
    [(CLUSTER, "quorum"), ("amqp://guest:guest@n1:5672//", "classic"), ("redis://r:6379/0", "classic")],
)
def test_quorum_queues_on_a_cluster_and_one_node_are_fine(url, queue_type):
    with override_settings(CELERY_BROKER_URL=url, EVENT_TASKS_QUEUE_TYPE=queue_type):
        assert checks.check_broker() == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"EVENT_TASKS_REQUIRE_DURABLE_BROKER": True}, "serves the platform's figures to anyone"),
        ({"EVENT_TASKS_REQUIRE_ENDPOINT_AUTH": True}, "will not start"),
        ({"EVENT_TASKS_REQUIRE_ENDPOINT_AUTH": True, "EVENT_TASKS_METRICS_AUTH": "ops:s3cret"}, None),
        ({}, None),  # local settings: no warning
    ],
)
def test_production_settings_without_metrics_credentials_are_a_warning(changes, expected):
    from event_tasks import conf

    with override_settings(**changes):
        conf.settings.cache_clear()
        found = checks.check_endpoint_auth()
    conf.settings.cache_clear()
    if expected is None:
        assert found == []
    else:
        assert ids(found) == ["event_tasks.W003"]
        assert expected in found[0].msg and "EVENT_TASKS_METRICS_AUTH" in found[0].hint
