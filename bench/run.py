"""``python -m bench``: every benchmark row, our figure beside plain Celery, plain kombu and the
Open edX Redis event bus, measured in the same invocation. See bench/README.md."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BENCH, ROOT, Harness
from .sections import ALL

MODULES = {m.NAME: m for m in ALL if m.NAME}  # --only name -> section module
SECTIONS = tuple(MODULES)  # ("publish", "consume", "latency", "outbox", "rabbitmq")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (default 3; the median is reported)")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count (development: 0.1)")
    parser.add_argument(
        "--out",
        help="where RESULTS.md and results.jsonl go (default: bench/ for a full "
        "run at scale 1, else a temporary directory)",
    )
    args = parser.parse_args(argv)
    sections = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.rounds < 3:
        print("warning: fewer than 3 runs per figure", file=sys.stderr)
    full = sections == list(SECTIONS) and args.scale == 1.0 and args.rounds >= 3
    out_dir = Path(args.out) if args.out else (BENCH if full else Path(tempfile.mkdtemp(prefix="et-bench-out-")))
    out_dir.mkdir(parents=True, exist_ok=True)
    Bench(args.rounds, args.scale, sections, out_dir, argv if argv is not None else sys.argv[1:]).run()


class Bench(Harness):
    """One invocation: describe every section, run the selected ones, write RESULTS.md and results.jsonl."""

    def __init__(self, rounds: int, scale: float, sections: list[str], out_dir: Path, argv: list[str]) -> None:
        super().__init__(rounds, scale, sections, out_dir, argv)
        for module in ALL:
            if module.NAME:
                for title in module.TITLES:
                    self.results.reproduce[title] = shlex.join([*self.base, f"--only={module.NAME}"])

    @staticmethod
    def code_state() -> dict[str, Any]:
        """The code measured: HEAD, uncommitted changes, and a digest of the library, config and catalog files."""
        import hashlib

        def git(*args: str) -> str:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
            # rstrip, not strip: the first porcelain line starts with a space (" M path")
            return out.stdout.rstrip() if out.returncode == 0 else "?"

        digest = hashlib.sha1()
        for folder in ("event_tasks", "config", "schemas", "bench"):
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and path.suffix in (".py", ".lua", ".json") and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(ROOT)).encode())
                    digest.update(path.read_bytes())
        dirty = [
            line[3:] for line in git("status", "--porcelain", "--", "event_tasks", "config", "schemas").splitlines()
        ]
        return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty, "digest": digest.hexdigest()[:12]}

    def run(self) -> None:
        t0 = time.monotonic()
        load_before = os.getloadavg()
        self.code_before = self.code_state()
        print(f"$ {self.command}", flush=True)
        try:
            self.setup()
            for module in ALL:
                module.describe(self)
            for section in self.sections:
                started = time.monotonic()
                print(f"== {section}", flush=True)
                MODULES[section].run(self)
                print(f"== {section} done in {time.monotonic() - started:.0f} s", flush=True)
            for module in ALL:
                if not module.NAME:
                    module.run(self)
            wall = time.monotonic() - t0
            meta = self.meta(load_before)
            self.results.jsonl(self.out_dir / "results.jsonl", meta)
            (self.out_dir / "RESULTS.md").write_text(self.results.markdown(meta, wall))
            print(f"wrote {self.out_dir / 'RESULTS.md'} and {self.out_dir / 'results.jsonl'}; wall time {wall:.0f} s")
        finally:
            self.teardown()

    def meta(self, load_before: tuple[float, float, float]) -> dict[str, Any]:
        versions = {"Python": platform.python_version()}
        for dist in (
            "celery",
            "kombu",
            "redis",
            "Django",
            "django-celery-results",
            "marshmallow",
            "psycopg",
            "openedx-events",
            "edx-event-bus-redis",
            "walrus",
            "fastavro",
        ):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = "not installed"
        versions["Redis server"] = self.redis.version() if self.redis else "?"
        if self.vhost is not None:
            versions["RabbitMQ"] = self.vhost.version()
        if self.pg is not None:
            versions["PostgreSQL"] = self.pg.version()
        cpu = "?"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        after = self.code_state()
        before = self.code_before
        code = (
            f"commit {before['commit']}"
            + (f" with uncommitted changes in {', '.join(before['uncommitted'])}" if before["uncommitted"] else "")
            + f" (digest of event_tasks/, config/, schemas/, bench/: {before['digest']})"
        )
        if after["digest"] != before["digest"] or after["uncommitted"] != before["uncommitted"]:
            code += (
                f"; **the code changed during the run** (now commit {after['commit']}, digest {after['digest']}): "
                "workers started late in the run may have run the newer code"
            )
        elif after["commit"] != before["commit"]:
            code += (
                f"; HEAD moved to {after['commit']} during the run, but none of the measured files changed "
                "(same digest)"
            )
        machine = {
            "code measured": code,
            "CPU": f"{os.cpu_count()} cores, {cpu}",
            "kernel": platform.release(),
            "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in load_before),
            "load average at end": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
            "other work": "the machine is shared: other processes (e.g. another test suite) may have "
            "run at the same time; the load averages above say how busy it was",
        }
        return {"machine": machine, "versions": versions}
