"""The package's dependencies run one way (docs/decisions/0006-layers.md), with no cycle, not even
one hidden behind a function-level import.

Every ``import`` in every module of ``event_tasks`` is read (module level and inside functions;
``TYPE_CHECKING`` blocks are left out, they never run), and each module may import only modules
of its own layer or a lower one.
"""
from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import event_tasks

PACKAGE = Path(event_tasks.__file__).parent
LAYERS = [
    ("core", {"errors", "conf", "topics", "envelope", "codec", "catalog", "handlers"}),
    ("wire", {"message", "rabbitmq_api", "topology", "topologycheck", "fanout", "redis_transport", "brokercheck"}),
    ("store", {"models", "apps", "migrations", "idempotency", "deadletters", "outbox", "retention", "servicedbs"}),
    ("produce/consume", {"publisher", "relay", "dispatch", "batching", "intake"}),
    ("celery integration", {"app", "worker", "maintenance"}),
    ("operations", {"replay", "admin", "management", "testing", "pytest_plugin", "schemacheck", "openedx",
                    "status", "trace", "tail", "exports", "metrics"}),
]
RANK = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


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
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("event_tasks"):
                target = node.module[len("event_tasks"):].lstrip(".")
            else:
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}".strip(".")
                out.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("event_tasks."):
                    out.add(alias.name[len("event_tasks."):])
    return {m for m in out if m and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: {m for m in imports_of(name, path, known) if m in known} for name, path in found.items() if name}


def rank(module: str) -> int:
    top = module.split(".")[0]
    assert top in RANK, f"event_tasks.{module} is in no layer: add it to LAYERS and docs/decisions/0006-layers.md"
    return RANK[top]


def test_every_module_has_a_layer():
    for name in graph():
        rank(name)


def test_imports_run_one_way():
    wrong = [f"{m} ({LAYERS[rank(m)][0]}) imports {d} ({LAYERS[rank(d)][0]})"
             for m, deps in graph().items() for d in deps if rank(d) > rank(m)]
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
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
    module.write_text("def f():\n    from .publisher import send_event\n    return send_event\n")
    assert imports_of("probe", module, {"publisher", "probe"}) == {"publisher"}


def test_the_host_facing_modules_import_before_django_is_set_up():
    """A host's celery.py imports event_tasks.app before Django is set up (the usual recipe)."""
    import subprocess
    import sys

    code = ("import event_tasks, event_tasks.app, event_tasks.publisher; "
            "from django.apps import apps; assert not apps.ready; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test"},
                         cwd=str(PACKAGE.parent))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_package_modules_are_all_seen():
    names = {m.name for m in pkgutil.iter_modules([str(PACKAGE)])}
    assert names <= set(RANK), names - set(RANK)
