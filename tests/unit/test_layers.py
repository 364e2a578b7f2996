"""The package's dependencies run one way (docs/decisions/0006-layers.md), with no cycle, not even
one hidden behind a function-level import.

A folder is a layer. Each top-level folder of ``event_tasks`` (``brokers/``, ``store/``, ``send/``,
``consume/``, ``ops/``, and the faces ``management/`` and ``openedx/``) says in its ``__init__``
docstring which layers it may import (``May import: core, brokers.``); a folder inside one
(``brokers/redis/``) belongs to it. The modules at the root are of two kinds, told apart by their
imports: the **core** (``errors``, ``conf``, ``catalog``, ...) imports no folder, and every layer
may import it; a **face** (``app``, ``testing``, ``admin``, ...) imports layers, and no layer may
import it.

Every ``import`` of every module is read (module level and inside functions; ``TYPE_CHECKING``
blocks are left out, they never run).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import event_tasks

PACKAGE = Path(event_tasks.__file__).parent
CORE = "core"
FROZEN = {"migrations"}  # Django's migrations: they import nothing of the package


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        found[".".join(parts)] = path
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if not name:
        package = []
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and (node.module == "event_tasks" or node.module.startswith("event_tasks.")):
                target = node.module[len("event_tasks") :].lstrip(".")
            else:
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}".strip(".")
                out.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("event_tasks."):
                    out.add(alias.name[len("event_tasks.") :])
    return {m for m in out if m and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: {m for m in imports_of(name, path, known) if m in known} for name, path in found.items()}


def layers() -> dict[str, set[str]]:
    """``{folder: layers it may import}``, read from each top-level folder's docstring."""
    declared: dict[str, set[str]] = {}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        folder = init.parent.name
        if folder in FROZEN:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        found = re.search(r"^May import: (.*?)\.?$", doc, re.MULTILINE)
        assert found, (
            f"event_tasks/{folder}/__init__.py: its docstring says what the layer may import ('May import: ...')"
        )
        declared[folder] = {word.strip() for word in found.group(1).split(",")}
    return declared


def layer_of(module: str, declared: dict[str, set[str]], faces: set[str]) -> str:
    top = module.split(".")[0]
    if top in declared or top in FROZEN:
        return top
    return "face" if module in faces else CORE


def root_faces(g: dict[str, set[str]], declared: dict[str, set[str]]) -> set[str]:
    """Root modules that import a layer, directly or through other root modules."""
    root = {m for m in g if "." not in m and m.split(".")[0] not in declared and m not in FROZEN}
    faces = {m for m in root if any(d.split(".")[0] in declared for d in g[m])}
    grew = True
    while grew:
        more = {m for m in root - faces if g[m] & faces}
        grew = bool(more)
        faces |= more
    return faces


def test_every_folder_says_what_it_may_import_and_the_layers_do_not_loop():
    declared = layers()
    assert {"brokers", "store", "send", "consume", "ops"} <= set(declared)
    for folder, allowed in declared.items():
        unknown = allowed - set(declared) - {CORE}
        assert not unknown, f"event_tasks/{folder} may import {sorted(unknown)}: no such layer"
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(declared.get(node, set()) - {CORE}):
            assert state.get(dep) != 1, "the layers loop: " + " -> ".join([*path, node, dep])
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for folder in declared:
        if folder not in state:
            visit(folder, [])


def test_imports_run_one_way():
    g = graph()
    declared = layers()
    faces = root_faces(g, declared)
    wrong = []
    for module, deps in g.items():
        mine = layer_of(module, declared, faces)
        for dep in deps:
            theirs = layer_of(dep, declared, faces)
            if theirs == mine or mine == "face":
                continue
            if mine in FROZEN or theirs == "face" or theirs not in declared.get(mine, {CORE}) | {CORE}:
                wrong.append(f"{module} ({mine}) imports {dep} ({theirs})")
            elif mine == CORE and theirs != CORE:
                wrong.append(f"{module} (core) imports {dep} ({theirs})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_the_core_is_what_the_layers_share():
    """The root's core modules; a new root module that imports a layer is a face and no layer may use it."""
    g = graph()
    faces = root_faces(g, layers())
    assert {"app", "testing", "admin", "pytest_plugin", ""} <= faces
    assert not faces & {"errors", "conf", "envelope", "topics", "codec", "catalog", "handlers", "models"}


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(g.get(node, ())):
            if dep == "":  # the package itself: every module imports it first, as Python does
                continue
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node)


def test_the_layering_check_sees_function_level_imports(tmp_path):
    """The checker itself: an import inside a function counts (so a hidden cycle cannot pass)."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from .send.publisher import send_event\n    return send_event\n")
    assert imports_of("probe", module, {"send.publisher", "probe"}) == {"send.publisher"}


def test_the_layering_check_refuses_an_import_against_the_layers(tmp_path, monkeypatch):
    """The checker itself: a store module importing the send path is reported."""
    g = graph()
    g["store.outbox"] = {*g["store.outbox"], "send.publisher"}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: g)
    try:
        test_imports_run_one_way()
    except AssertionError as exc:
        assert "store.outbox (store) imports send.publisher (send)" in str(exc)
    else:
        raise AssertionError("an import from store to send passed the layer check")


def test_the_host_facing_modules_import_before_django_is_set_up():
    """A host's celery.py imports event_tasks.app before Django is set up (the usual recipe)."""
    code = (
        "import event_tasks, event_tasks.app, event_tasks.maintenance, event_tasks.send.publisher; "
        "from django.apps import apps; assert not apps.ready; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        cwd=str(PACKAGE.parent),
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these modules: {long}"
