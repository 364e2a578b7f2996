"""Build this tree's wheel and read what it declares (tests/unit/test_packaging.py and
tests/integration/test_packaging_venv.py)."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(dest: Path) -> Path:
    """``pip wheel`` of the source tree into ``dest`` (no dependencies, no build isolation: offline)."""
    leftover = not (ROOT / "build").exists()  # setuptools builds in the source tree: tidy up after it
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if leftover:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = dest.glob("event_tasks-*.whl")
    return wheel


def dist_info(wheel: Path, name: str) -> str:
    """The text of ``<dist-info>/<name>`` in the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        (path,) = [n for n in zf.namelist() if n.split("/")[0].endswith(".dist-info") and n.split("/", 1)[1] == name]
        return zf.read(path).decode()


def metadata(wheel: Path) -> Message:
    return email.parser.Parser().parsestr(dist_info(wheel, "METADATA"))


def requirements(wheel: Path) -> list[Requirement]:
    return [Requirement(line) for line in metadata(wheel).get_all("Requires-Dist") or []]


def install_requires(wheel: Path, extra: str | None = None) -> list[Requirement]:
    """What ``pip install event-tasks`` brings (no extra), or what one extra adds."""
    if extra is None:
        return [r for r in requirements(wheel) if r.marker is None]
    return [r for r in requirements(wheel) if r.marker is not None and r.marker.evaluate({"extra": extra})]


def extra(wheel: Path, name: str) -> set[str]:
    """The distributions (canonical names) of one extra."""
    return {canonicalize_name(r.name) for r in install_requires(wheel, name)}


def lower_bounds(wheel: Path, extra: str | None = None) -> dict[str, str]:
    """``{distribution: its lower bound}`` of every ``install_requires`` entry (each has one), or of
    one extra's."""
    bounds = {}
    for req in install_requires(wheel, extra):
        (low,) = [s.version for s in req.specifier if s.operator == ">="]
        bounds[canonicalize_name(req.name)] = low
    return bounds
