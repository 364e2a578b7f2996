"""The built wheel in a fresh virtualenv, at the lower bounds it declares.

The wheel is installed with ``pip install --constraint lower.txt``, where ``lower.txt`` pins every
``install_requires`` entry at its lower bound (read from the wheel's metadata: the bounds in
setup.cfg are the versions tested here). In that virtualenv, outside the source tree, a script
configures Django in code (``settings.configure``: ``INSTALLED_APPS=["event_tasks"]``, SQLite in
memory, a one-type catalog written next to it), migrates, and sends one event through a
``memory://`` Celery app passed to ``install()``. Nothing of the demo is installed (no flower,
honcho, dj-database-url, no package but ``event_tasks``), and the commands that need an extra
say which. Then the ``export`` and ``metrics`` extras, at their own lower bounds, beside it.

Installs from the package index: about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from tests.built_wheel import build_wheel, dist_info, lower_bounds

pytestmark = [pytest.mark.pypi, pytest.mark.timeout(900)]

EVENT_TYPE = "org.example.ping.created.v1"
DEMO = ("flower", "honcho", "dj-database-url")

CATALOG = '''
"""A catalog of one event type (the wheel's check in a fresh virtualenv)."""

from marshmallow import fields

from event_tasks.catalog import EventSchema, event_type


class PingSchema(EventSchema):
    n = fields.Integer(required=True)


PING = event_type("org.example.ping.created.v1", schema=PingSchema, owner="pinger", description="A ping.")
'''

PROBE = '''
"""Configure Django in code, install the fabric on a memory:// Celery app, send one event, try the
commands of the extras. Prints one JSON report. argv: mode (plain|extras), distributions."""

import json
import sys
from importlib.metadata import version

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["event_tasks"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
    EVENT_TASKS_SERVICE="pinger",
    EVENT_TASKS_SCHEMAS_PACKAGE="tinycat",
)
django.setup()

from celery import Celery
from django.core.management import CommandError, call_command
from kombu import Connection, Exchange, Queue

import event_tasks
import event_tasks.app
from event_tasks import send_event
from event_tasks.errors import ExtraMissing

mode, names = sys.argv[1], sys.argv[2:]
report = {"version": event_tasks.__version__, "installed": {n: version(n) for n in names}}
call_command("migrate", verbosity=0)  # the migrations apply on this Django
app = event_tasks.app.install(Celery("pinger", broker="memory://", set_as_current=False))
watcher = Queue("events.watcher", exchange=Exchange("events", "topic"), routing_key="org.example.#")
with Connection("memory://") as conn:
    watcher(conn.default_channel).declare()
    event = send_event("org.example.ping.created.v1", {"n": 1})
    message = watcher(conn.default_channel).get(no_ack=True)
    report["sent"] = event.id
    report["received"] = None if message is None else {"task_id": message.headers["id"], "args": message.decode()[0]}

try:
    call_command("events", "schema", "export", "--out", "exported-" + mode, stdout=sys.stderr, stderr=sys.stderr)
    report["export"] = "ok"
except CommandError as exc:
    report["export"] = f"CommandError: {exc}"
try:
    from event_tasks.ops import metrics
except ExtraMissing as exc:
    report["metrics"] = f"ExtraMissing: {exc}"
else:
    from prometheus_client import generate_latest

    scrape = generate_latest(metrics.registry(metrics.StatusCollector(app, services=["pinger"]))).decode()
    report["metrics"] = [line for line in scrape.splitlines() if line.startswith("event_tasks_up")]
print(json.dumps(report))
'''


@dataclass
class Venv:
    root: Path
    python: Path
    wheel: Path
    lower: dict[str, str]
    #: ``pip list`` right after the install (before anything else touched the virtualenv)
    installed: dict[str, str]


def _env(**extra: str) -> dict[str, str]:
    """This process's environment (the package index settings) without what points at this tree."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME")
        and not k.startswith("EVENT_TASKS_")
    }
    env.update(extra)
    return env


def _run(argv: Sequence[str | Path], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"{' '.join(map(str, argv))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _versions(found: object) -> dict[str, Version]:
    assert isinstance(found, dict), found
    return {name: Version(v) for name, v in found.items()}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    root = tmp_path_factory.mktemp("fresh-venv")
    wheel = build_wheel(root / "dist")
    lower = lower_bounds(wheel)
    (root / "lower.txt").write_text("".join(f"{name}=={low}\n" for name, low in sorted(lower.items())))
    _run([sys.executable, "-m", "venv", root / "venv"], cwd=root)
    python = root / "venv" / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "--constraint", root / "lower.txt", wheel], cwd=root)
    listed = json.loads(_run([python, "-m", "pip", "list", "--format=json"], cwd=root).stdout)
    (root / "tinycat.py").write_text(textwrap.dedent(CATALOG).lstrip())
    (root / "probe.py").write_text(textwrap.dedent(PROBE).lstrip())
    return Venv(root, python, wheel, lower, {_canonical(d["name"]): d["version"] for d in listed})


def _probe(venv: Venv, mode: str, names: Sequence[str], **env: str) -> dict[str, object]:
    out = _run([venv.python, venv.root / "probe.py", mode, *names], cwd=venv.root, timeout=120, **env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_wheel_installs_the_library_alone(venv):
    assert dist_info(venv.wheel, "top_level.txt").split() == ["event_tasks"]
    tops = {n.split("/")[0] for n in zipfile.ZipFile(venv.wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"event_tasks"}, tops
    for name in (*DEMO, "apispec", "prometheus-client", "django-celery-results"):
        assert name not in venv.installed, f"{name} came with a plain install: {sorted(venv.installed)}"
    site = next((venv.root / "venv" / "lib").glob("python3*/site-packages"))
    assert not (site / "schemas").exists()
    _run([venv.python, "-m", "pip", "check"], cwd=venv.root)  # what is installed is consistent


def test_at_its_lower_bounds_it_imports_migrates_and_sends(venv):
    for name, low in venv.lower.items():
        assert name in venv.installed and Version(venv.installed[name]) == Version(low), (name, low)
    _run([venv.python, "-c", "import event_tasks, event_tasks.app"], cwd=venv.root)
    report = _probe(venv, "plain", list(venv.lower))
    assert _versions(report["installed"]) == _versions(venv.lower)
    assert report["version"] == venv.installed["event-tasks"]
    received = report["received"]
    assert isinstance(received, dict), "the event never reached the broker"
    assert received["task_id"] == report["sent"]
    envelope, data = received["args"]
    assert (envelope["type"], envelope["source"], data) == (EVENT_TYPE, "pinger", {"n": 1})


def test_without_the_extras_the_commands_say_which_to_install(venv):
    report = _probe(venv, "plain", [])
    assert str(report["export"]).startswith(
        "CommandError: events schema export needs apispec: pip install 'event-tasks[export]'"
    ), report["export"]
    assert str(report["metrics"]).startswith(
        "ExtraMissing: events metrics needs prometheus-client: pip install 'event-tasks[metrics]'"
    ), report["metrics"]
    assert not (venv.root / "exported-plain").exists()


def test_the_export_and_metrics_extras_at_their_lower_bounds(venv):
    """Installed beside the virtualenv (``--target``, on ``PYTHONPATH`` for this run only), so the
    virtualenv itself stays a plain install for the other tests."""
    extras = venv.root / "extras"
    pins = {**lower_bounds(venv.wheel, "export"), **lower_bounds(venv.wheel, "metrics")}
    _run(
        [venv.python, "-m", "pip", "install", "-q", "--target", extras, *(f"{n}=={v}" for n, v in pins.items())],
        cwd=venv.root,
    )
    report = _probe(venv, "extras", list(pins), PYTHONPATH=str(extras))
    assert _versions(report["installed"]) == _versions(pins)
    assert report["export"] == "ok"
    out = venv.root / "exported-extras"
    assert json.loads((out / "schemas" / f"{EVENT_TYPE}.json").read_text())["properties"]["n"]["type"] == "integer"
    assert json.loads((out / "asyncapi.json").read_text())["asyncapi"].startswith("3.")
    assert report["metrics"] == ["event_tasks_up 1.0"]
