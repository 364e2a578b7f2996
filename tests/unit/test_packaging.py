"""The built wheel: the library alone, what it needs at run time and for type checkers, what it
requires and nothing more (installing it in a fresh virtualenv at its lower bounds:
tests/integration/test_packaging_venv.py)."""

from __future__ import annotations

import ast
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.built_wheel import ROOT, build_wheel, dist_info, extra, install_requires, lower_bounds, metadata

#: What `import event_tasks` and its faces need, and only that (every one is imported by the library).
REQUIRED = {"celery", "kombu", "billiard", "amqp", "vine", "redis", "django", "marshmallow", "cryptography"}
#: This repository's demo and tests; never imported by event_tasks.
DEMO = {"flower", "honcho", "dj-database-url"}
#: Imported by one command each (or when the host installs it): optional, named by an extra.
OPTIONAL = {"apispec": "export", "prometheus-client": "metrics", "django-celery-results": "results"}
#: Parts of the package that belong to an extra or a tool, not to a plain install.
NOT_PLAIN = ("event_tasks/openedx/", "event_tasks/pytest_plugin.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_ships_py_typed_and_every_lua_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "event_tasks/py.typed" in names
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "event_tasks").rglob("*.lua")}
    assert scripts and scripts <= names, scripts - names
    assert "event_tasks/brokers/redis/fanout.lua" in scripts


def test_the_wheel_ships_event_tasks_alone(wheel):
    assert dist_info(wheel, "top_level.txt").split() == ["event_tasks"]
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    (info,) = [t for t in tops if t.endswith(".dist-info")]
    assert tops == {"event_tasks", info}, tops  # no schemas/ (the demo's catalog), consumers/, config/, demo/


def test_the_wheel_ships_the_license(wheel):
    assert metadata(wheel)["License"] == "Apache-2.0"
    assert metadata(wheel).get_all("License-File") == ["LICENSE"]
    assert dist_info(wheel, "licenses/LICENSE") == (ROOT / "LICENSE").read_text()
    debian = Path("/usr/share/common-licenses/Apache-2.0")
    if debian.exists():  # the text is Apache's, verbatim
        assert (ROOT / "LICENSE").read_bytes() == debian.read_bytes()


def test_install_requires_is_the_library_imports(wheel):
    required = {canonicalize_name(r.name) for r in install_requires(wheel)}
    assert required == REQUIRED
    assert not required & (DEMO | set(OPTIONAL))
    for req in install_requires(wheel):
        operators = {s.operator for s in req.specifier}
        assert operators == {">=", "<"}, f"{req}: a tested lower bound and an upper bound past what CI runs"
    assert set(lower_bounds(wheel)) == REQUIRED


def test_extras_name_what_a_command_or_the_demo_needs(wheel):
    assert extra(wheel, "demo") >= DEMO
    for distribution, name in OPTIONAL.items():
        assert extra(wheel, name) == {distribution}, name


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of every import in a module (at module level or in a function), stdlib
    and relative imports left out."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"event_tasks", "__future__"}


def test_every_import_of_the_library_is_declared():
    """An import the metadata does not declare breaks a plain install; a requirement nothing
    imports is a package every user installs for nothing."""
    dists = packages_distributions()
    imported: dict[str, set[str]] = {}
    for path in (ROOT / "event_tasks").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(NOT_PLAIN):
            continue
        for module in _third_party_imports(path):
            for distribution in dists.get(module, [module]):
                imported.setdefault(canonicalize_name(distribution), set()).add(rel)
    assert set(imported) == REQUIRED | set(OPTIONAL), imported
    assert imported["apispec"] == {"event_tasks/ops/exports.py"}
    assert imported["prometheus-client"] == {"event_tasks/ops/metrics.py"}


def test_classifiers(wheel):
    meta = metadata(wheel)
    classifiers = set(meta.get_all("Classifier") or [])
    assert {
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Celery",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Typing :: Typed",
    } <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert meta["Requires-Python"] == ">=3.11"
