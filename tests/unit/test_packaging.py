"""The built wheel carries what the package needs at run time and for type checkers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import event_tasks

ROOT = Path(event_tasks.__file__).parent.parent


def test_the_wheel_ships_py_typed_and_every_lua_script(tmp_path):
    leftover = not (ROOT / "build").exists()  # setuptools builds in the source tree: tidy up after it
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if leftover:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("event_tasks-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "event_tasks/py.typed" in names
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "event_tasks").rglob("*.lua")}
    assert scripts and scripts <= names, scripts - names
    assert "event_tasks/brokers/redis/fanout.lua" in scripts
