"""A command that needs an optional extra says which one to install, when it runs.

``events schema export`` needs apispec (extra ``export``), ``events metrics`` prometheus-client
(extra ``metrics``). Without them ``event_tasks``, its app, its admin and the ``events`` command
still import; only the command that needs the package fails, with :class:`ExtraMissing`.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from event_tasks.errors import ConfigurationError, ExtraMissing

EXPORT = "events schema export needs apispec: pip install 'event-tasks[export]'"
METRICS = "events metrics needs prometheus-client: pip install 'event-tasks[metrics]'"


def _without(monkeypatch: pytest.MonkeyPatch, package: str, module: str) -> None:
    """As if ``package`` were not installed, and ``module`` (which imports it) not imported yet."""
    for name in {package, *(n for n in sys.modules if n.startswith(package + "."))}:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: `import name` raises ImportError
    monkeypatch.delitem(sys.modules, module, raising=False)
    parent, _, child = module.rpartition(".")
    # `from event_tasks.ops import metrics` takes the package's attribute when it is set
    monkeypatch.delattr(importlib.import_module(parent), child, raising=False)


def test_exports_without_apispec_raise_extra_missing(monkeypatch):
    _without(monkeypatch, "apispec", "event_tasks.ops.exports")
    with pytest.raises(ExtraMissing) as caught:
        importlib.import_module("event_tasks.ops.exports")
    assert str(caught.value).startswith(EXPORT), caught.value
    assert isinstance(caught.value, ConfigurationError)
    assert (caught.value.package, caught.value.extra) == ("apispec", "export")


def test_metrics_without_prometheus_client_raise_extra_missing(monkeypatch):
    _without(monkeypatch, "prometheus_client", "event_tasks.ops.metrics")
    with pytest.raises(ExtraMissing) as caught:
        importlib.import_module("event_tasks.ops.metrics")
    assert str(caught.value).startswith(METRICS), caught.value
    assert (caught.value.package, caught.value.extra) == ("prometheus-client", "metrics")


def test_the_schema_export_command_says_which_extra(monkeypatch, tmp_path):
    _without(monkeypatch, "apispec", "event_tasks.ops.exports")
    with pytest.raises(CommandError, match=r"needs apispec: pip install 'event-tasks\[export\]'"):
        call_command("events", "schema", "export", "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
def test_the_metrics_command_says_which_extra(monkeypatch):
    _without(monkeypatch, "prometheus_client", "event_tasks.ops.metrics")
    with pytest.raises(ExtraMissing):  # first: had the import worked, the command would serve until stopped
        importlib.import_module("event_tasks.ops.metrics")
    with pytest.raises(CommandError, match=r"needs prometheus-client: pip install 'event-tasks\[metrics\]'"):
        call_command("events", "metrics", "--port", "0")


def test_the_library_and_the_command_import_without_either_extra():
    """In a fresh process with neither package: every face imports; the command exits 1 with one
    line naming the extra, no traceback."""
    block = "import sys; sys.modules['apispec'] = None; sys.modules['prometheus_client'] = None\n"
    code = block + (
        "import django; django.setup()\n"
        "import event_tasks, event_tasks.app, event_tasks.admin, event_tasks.testing, event_tasks.maintenance\n"
        "import event_tasks.management.commands.events, event_tasks.ops.status, event_tasks.ops.trace\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'events', 'schema', 'export', '--out', sys.argv[1]])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "/nonexistent/should-not-be-written"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().startswith("CommandError: " + EXPORT), out.stderr
