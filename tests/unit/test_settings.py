"""The settings reference (``conf.Settings``, ``docs/settings.md``), type refusals, and no default catalog."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from event_tasks import catalog, conf, settings_doc
from event_tasks.errors import ConfigurationError, InvalidSetting, NoCatalog

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "settings.md"
READERS = {conf.ALL, conf.SENDER, conf.WORKER, conf.RELAY, conf.OPERATOR}


def test_docs_settings_md_is_the_generated_reference():
    text = DOC.read_text()
    start, end = text.index(settings_doc.BEGIN), text.index(settings_doc.END) + len(settings_doc.END)
    assert text[start:end] == settings_doc.settings_reference(), "docs/settings.md is stale: run `make settings-doc`"


def test_write_reference_keeps_the_hand_written_parts(tmp_path):
    page = tmp_path / "settings.md"
    page.write_text(f"# head\n\n{settings_doc.BEGIN}\nold table\n{settings_doc.END}\n\n## tail\n")
    assert settings_doc.write_reference(page) is True
    assert page.read_text() == f"# head\n\n{settings_doc.settings_reference()}\n\n## tail\n"
    assert settings_doc.write_reference(page) is False  # nothing left to change


def test_every_field_is_documented_with_its_readers_and_listed():
    text = DOC.read_text()
    for field in dataclasses.fields(conf.Settings):
        doc, read_by = field.metadata.get("doc"), field.metadata.get("read_by")
        assert doc and doc.endswith((".", "...")), field.name
        assert read_by and set(read_by.split(", ")) <= READERS, (field.name, read_by)
        assert f"| `EVENT_TASKS_{field.name.upper()}` |" in text


def test_defaults_are_kept_and_the_catalog_has_none():
    defaults = conf.Settings()
    assert (defaults.exchange, defaults.queue_prefix, defaults.max_retries, defaults.retry_backoff) == (
        "events",
        "events.",
        5,
        2.0,
    )
    assert (defaults.outbox, defaults.max_payload_bytes, defaults.outbox_retention) == (True, 256 * 1024, 604800.0)
    assert defaults.schemas_package is None
    with pytest.raises(NoCatalog, match="EVENT_TASKS_SCHEMAS_PACKAGE is not set: name the package"):
        _ = defaults.schemas_packages
    assert conf.Settings(schemas_package="a").schemas_packages == ("a",)
    assert conf.Settings(schemas_package=("a", "b")).schemas_packages == ("a", "b")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("EVENT_TASKS_MAX_RETRIES", "ten", "int"),
        ("EVENT_TASKS_MAX_RETRIES", True, "int"),  # a bool is not a number here
        ("EVENT_TASKS_RETRY_BACKOFF", "2", "float"),
        ("EVENT_TASKS_OUTBOX", "false", "bool"),
        ("EVENT_TASKS_SERVICE", 7, "str or None"),
        ("EVENT_TASKS_HANDLERS_MODULE", None, "str"),
        ("EVENT_TASKS_SCHEMAS_PACKAGE", ["schemas", 3], "str, list of str or None"),
        ("EVENT_TASKS_OPENEDX_SIGNALS", {"a": "b"}, "list of str"),
        ("EVENT_TASKS_SERVICE_DATABASES", {"lms": 1}, "dict of str to str or None"),
    ],
)
def test_settings_refuses_a_value_of_the_wrong_type(name, value, expected):
    with override_settings(**{name: value}):
        conf.settings.cache_clear()
        with pytest.raises(InvalidSetting) as caught:
            conf.settings()
    assert isinstance(caught.value, ConfigurationError)
    assert str(caught.value).startswith(f"{name} must be {expected}, not {type(value).__name__} ({value!r}):")
    assert "\n" not in str(caught.value)


def test_settings_takes_what_the_types_allow():
    with override_settings(
        EVENT_TASKS_RETRY_BACKOFF=3,  # an int will do for a float
        EVENT_TASKS_SCHEMAS_PACKAGE=["schemas", "tests.fabric.schemas"],
        EVENT_TASKS_OPENEDX_SIGNALS="org.openedx.learning.#",  # one name: a list of one
        EVENT_TASKS_SERVICE_DATABASES={"lms": "lms_replica"},
        EVENT_TASKS_VISIBILITY_TIMEOUT=None,
    ):
        conf.settings.cache_clear()
        got = conf.settings()
    assert got.retry_backoff == 3
    assert got.schemas_package == ("schemas", "tests.fabric.schemas")
    assert got.openedx_signals == ("org.openedx.learning.#",)
    assert got.service_databases == {"lms": "lms_replica"}


def test_loading_the_catalog_without_the_setting_raises_no_catalog(monkeypatch):
    with override_settings():
        from django.conf import settings as django_settings

        del django_settings.EVENT_TASKS_SCHEMAS_PACKAGE
        conf.settings.cache_clear()
        with pytest.raises(NoCatalog):
            catalog.load()
        with pytest.raises(NoCatalog):
            catalog.all()
        monkeypatch.setattr(catalog, "_loaded_from", set())  # a fresh process: no catalog loaded yet
        with pytest.raises(NoCatalog):
            catalog.get("org.openedx.learning.probe.created.v1")


def _without_catalog(tmp_path: Path) -> dict[str, str]:
    """The environment of a process whose settings name no catalog (the test settings, minus it)."""
    (tmp_path / "nocatalog_settings.py").write_text(
        "from config.settings.test import *  # noqa: F403\n\ndel EVENT_TASKS_SCHEMAS_PACKAGE  # noqa: F821\n"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nocatalog_settings",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "CELERY_BROKER_URL": "memory://",
        "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.services",
    }


def test_send_event_without_a_catalog_raises_no_catalog(tmp_path):
    script = (
        "import django; django.setup()\n"
        "import config.celery_app\n"
        "from event_tasks import send_event\n"
        "from event_tasks.errors import NoCatalog\n"
        "try:\n"
        "    send_event('org.openedx.learning.probe.created.v1', {})\n"
        "except NoCatalog as exc:\n"
        "    print('NoCatalog:', exc)\n"
    )
    env = {**_without_catalog(tmp_path), "EVENT_TASKS_SERVICE": "gamma"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NoCatalog: EVENT_TASKS_SCHEMAS_PACKAGE is not set: name the package")


def test_a_worker_without_a_catalog_refuses_to_start(tmp_path):
    env = {**_without_catalog(tmp_path), "EVENT_TASKS_SERVICE": "alpha"}
    args = ["-m", "celery", "-A", "config.celery_app", "worker", "-Q", "events.alpha", "-P", "solo"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"]
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode != 0
    assert "event-tasks: EVENT_TASKS_SCHEMAS_PACKAGE is not set: name the package" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_demo_settings_create_nothing_for_an_unknown_service(tmp_path):
    """A typo in EVENT_TASKS_SERVICE must not create var/<typo>.sqlite3 and run on an empty database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update({"EVENT_TASKS_SERVICE": "lsm", "EVENT_TASKS_VAR_DIR": str(tmp_path / "var"),
                "DJANGO_SETTINGS_MODULE": "config.settings.local"})  # fmt: skip
    out = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "EVENT_TASKS_SERVICE='lsm' is not one of the demo's services" in out.stderr
    assert "lms" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "var").exists()
    env["EVENT_TASKS_SERVICE"] = "lms"
    ok = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
