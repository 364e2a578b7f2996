"""The demo platform: real Redis, one real Celery worker per service (from the Procfile, via
honcho), every use case (docs/architecture.md, "Use cases") driven through ``send_event`` by its producing service.

Steps: use Redis on 127.0.0.1:6379 if it answers, else start one (and stop only that one);
migrate each service's own database; ``events declare`` (the Procfile ``release`` step); start
the workers with honcho; send the scenario (demo/scenario.py) from each producing service's own
process; hand one malformed message to the LMS to show a dead letter; wait until every service
processed its events; print each service's projection and compare with the expected counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEAD_LETTER_SERVICE = "lms"


@dataclasses.dataclass
class Report:
    broker_url: str
    summaries: dict[str, dict[str, Any]]
    expected: dict[str, dict[str, int]]
    deliveries: dict[str, int]
    events_sent: int
    mismatches: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _setup_django(settings_module: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _start_redis(url: str, var_dir: Path) -> subprocess.Popen[bytes]:
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[-1]
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(var_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from event_tasks.testing import wait_until

    wait_until(lambda: _redis_answers(url), 20, 0.05, f"redis-server on port {port}")
    return proc


def _run(cmd: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout


def _count_results(db: Path) -> int:
    """Deliveries a service finished: events it applied (duplicate marks) plus failed ones."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=10)
        try:
            return con.execute(
                "SELECT (SELECT count(DISTINCT event_id) FROM event_tasks_processedevent) + "
                "(SELECT count(*) FROM django_celery_results_taskresult WHERE status = 'FAILURE')"
            ).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def _make_keys(keys_dir: Path, services: set[str]) -> None:
    """A fresh Ed25519 key pair per service (``<service>.key``, ``<service>.pub``): the demo runs signed,
    with signatures enforced (docs/signing.md); the keys live under var/ for this run only."""
    from event_tasks.signing import generate_key_pair

    keys_dir.mkdir(parents=True, exist_ok=True)
    for service in sorted(services):
        private, public = generate_key_pair()
        key = keys_dir / f"{service}.key"
        key.write_text(private + "\n")
        key.chmod(0o600)
        (keys_dir / f"{service}.pub").write_text(public + "\n")


def _inject_invalid(broker_url: str, steps: list[Any], handlers: dict[str, Any], keys_dir: Path) -> str:
    """A message that skipped validation (an old producer, signed with its key): the LMS must dead-letter it."""
    import uuid

    from kombu import Connection, Exchange, Producer

    from event_tasks import catalog
    from event_tasks.brokers.message import encode_body, headers
    from event_tasks.envelope import SPECVERSION

    step = next(s for s in steps if handlers[DEAD_LETTER_SERVICE].for_type(s.event_type))
    required = sorted(n for n, f in catalog.get(step.event_type).schema_instance.fields.items() if f.required)
    data = {k: v for k, v in step.data.items() if k != required[0]}
    event_id = str(uuid.uuid4())
    envelope = {
        "id": event_id,
        "type": step.event_type,
        "source": step.producer,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "specversion": SPECVERSION,
        "key": None,
    }
    from event_tasks.signing import Signer, load_private_key

    key = load_private_key((keys_dir / f"{step.producer}.key").read_text())
    body, argsrepr = encode_body(Signer(f"{step.producer}-local", key).sign(envelope, data), data)
    with Connection(broker_url) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(""),
            routing_key=f"events.{DEAD_LETTER_SERVICE}",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            headers=headers(step.event_type, event_id, f"{event_id}:{DEAD_LETTER_SERVICE}", argsrepr),
        )
    return event_id


def run(
    broker_url: str | None = None,
    var_dir: Path | None = None,
    settings_module: str = "config.settings.local",
    echo: Callable[[str], None] = print,
    timeout: float = 90.0,
) -> Report:
    started = time.monotonic()
    _setup_django(settings_module)
    from django.conf import settings
    from kombu import Connection

    from demo.scenario import EXPECTED, STEPS
    from event_tasks.handlers import consuming_services, service_handlers
    from event_tasks.testing import wait_until

    broker_url = broker_url or settings.CELERY_BROKER_URL
    var_dir = (var_dir or ROOT / "var" / "demo").resolve()
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    services = consuming_services()
    handlers = {s: service_handlers(s) for s in services}
    deliveries = Counter({s: sum(1 for st in STEPS if handlers[s].for_type(st.event_type)) for s in services})
    deliveries[DEAD_LETTER_SERVICE] += 1

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "CELERY_BROKER_URL": broker_url,
        "EVENT_TASKS_VAR_DIR": str(var_dir),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CELERY_WORKER_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
        "EVENT_TASKS_SIGNING_KEYS_DIR": str(var_dir / "keys"),
        "EVENT_TASKS_SIGNING_MODE": "enforce",
    }
    from event_tasks import catalog

    _make_keys(var_dir / "keys", set(services) | {e.owner for e in catalog.all()})
    for key in ("EVENT_TASKS_SERVICE", "DATABASE_URL", "EVENT_TASKS_CONSUMERS_PACKAGE", "EVENT_TASKS_SCHEMAS_PACKAGE"):
        env.pop(key, None)

    redis_proc = None
    honcho = None
    try:
        if broker_url.startswith("redis") and not _redis_answers(broker_url):
            redis_proc = _start_redis(broker_url, var_dir)
            echo(f"broker: {broker_url} (started by the demo; stopped at the end)")
        else:
            echo(f"broker: {broker_url} (already running)")
        with Connection(broker_url) as conn, conn.channel() as channel:
            for s in services:
                channel.queue_purge(f"events.{s}")

        with ThreadPoolExecutor(len(services)) as pool:
            list(
                pool.map(
                    lambda s: _run(
                        [sys.executable, "manage.py", "migrate", "-v", "0"], {**env, "EVENT_TASKS_SERVICE": s}
                    ),
                    services,
                )
            )
        echo(f"databases: one per service under {var_dir}")
        for line in _run([sys.executable, "manage.py", "events", "declare"], env).splitlines():
            echo(f"  release: {line}")

        log_path = var_dir / "honcho.log"
        log = open(log_path, "wb")
        workers = [f"worker_{s}" for s in services]
        honcho = subprocess.Popen(
            [str(BIN / "honcho"), "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start", *workers],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(
            lambda: log_path.read_text(errors="replace").count(" ready.") >= len(workers),
            timeout,
            0.1,
            lambda: f"{len(workers)} workers to be ready; honcho log:\n{log_path.read_text()[-3000:]}",
        )
        echo(f"workers: {', '.join(workers)} (honcho, Procfile)")

        sent = 0
        for producer, group in groupby(enumerate(STEPS), key=lambda p: p[1].producer):
            indexes = [str(i) for i, _ in group]
            out = _run([sys.executable, "-m", "demo.produce", *indexes], {**env, "EVENT_TASKS_SERVICE": producer})
            types = sorted({STEPS[int(i)].event_type.split(".", 3)[3] for i in indexes})
            echo(f"  {producer:>18} sent {len(indexes):2} event(s): {', '.join(types)}")
            sent += len(out.strip().splitlines())
        bad_id = _inject_invalid(broker_url, STEPS, handlers, var_dir / "keys")
        echo(f"  {'(old producer)':>18} handed {DEAD_LETTER_SERVICE} one message with an invalid payload ({bad_id})")

        def processed() -> bool:
            return all(_count_results(var_dir / f"{s}.sqlite3") >= n for s, n in deliveries.items())

        wait_until(
            processed,
            timeout,
            0.2,
            lambda: (
                "every service to process its events: "
                + ", ".join(f"{s} {_count_results(var_dir / f'{s}.sqlite3')}/{n}" for s, n in deliveries.items())
            ),
        )

        with ThreadPoolExecutor(len(services)) as pool:
            outputs = list(
                pool.map(
                    lambda s: _run([sys.executable, "-m", "demo.summary"], {**env, "EVENT_TASKS_SERVICE": s}), services
                )
            )
        summaries = {s: json.loads(o.strip().splitlines()[-1]) for s, o in zip(services, outputs)}
    finally:
        if honcho is not None and honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGTERM)
            try:
                honcho.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)

    mismatches = []
    for s in services:
        got = summaries[s].get("counts", {})
        want = EXPECTED.get(s, {})
        if {k: got.get(k) for k in want} != want:
            mismatches.append(f"{s}: expected {want}, got {got}")
        if s != DEAD_LETTER_SERVICE and summaries[s]["dead_letters"]:
            mismatches.append(f"{s}: unexpected dead letters {summaries[s]['dead_letters']}")
    letters = summaries[DEAD_LETTER_SERVICE]["dead_letters"]
    if [d["event_id"] for d in letters] != [bad_id]:
        mismatches.append(f"{DEAD_LETTER_SERVICE}: expected one dead letter for {bad_id}, got {letters}")
    return Report(broker_url, summaries, EXPECTED, dict(deliveries), sent, mismatches, time.monotonic() - started)


def print_report(report: Report, echo: Callable[[str], None] = print) -> None:
    for service, summary in report.summaries.items():
        results = summary["results"]
        echo(
            f"\n== {service} (queue events.{service}, own database) — "
            f"{report.deliveries[service]} deliveries: {summary['applied']} applied, {results['FAILURE']} failed"
        )
        counts = summary.get("counts", {})
        echo("   counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        for row in summary.get("rows", [])[:12]:
            echo(f"   - {row}")
    echo("\n== dead letters")
    for service, summary in report.summaries.items():
        for d in summary["dead_letters"]:
            echo(f"   {service}: {d['event_type']} {d['event_id']} [{d['reason']}] {d['detail'][:160]}")
    total = sum(report.deliveries.values())
    if report.ok:
        echo(
            f"\nOK: {report.events_sent} events from their producers reached {len(report.summaries)} services "
            f"({total} deliveries incl. the bad message); projections match demo/scenario.py; "
            f"{report.seconds:.1f} s"
        )
    else:
        echo("\nMISMATCH:\n  " + "\n  ".join(report.mismatches))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker-url", help=f"default: the CELERY_BROKER_URL setting ({DEFAULT_BROKER})")
    parser.add_argument("--var-dir", type=Path, help="where the service databases go (default var/demo)")
    args = parser.parse_args(argv)
    report = run(args.broker_url, args.var_dir)
    print_report(report)
    return 0 if report.ok else 1
