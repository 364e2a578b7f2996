"""``make platform``: run the whole demo platform locally until Ctrl-C (``python -m demo.platform``).

The order a deploy uses: Redis (the one on 127.0.0.1:6379 if it answers, else one started here
and stopped at the end), each service's database migrated, the Procfile's ``release`` step once,
then every long-running Procfile process under honcho (workers, Flower, metrics, relays), with this
virtualenv's ``bin`` first on ``PATH`` so the Procfile's ``celery`` and ``python`` are ours.
honcho stops every process as soon as one exits, so the one-shot ``release`` line never runs
under it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from demo.runner import BIN, ROOT, _redis_answers, _run, _setup_django, _start_redis


def procfile_processes(procfile: Path) -> dict[str, str]:
    rows = {}
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            rows[name.strip()] = command.strip()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.platform", description=__doc__.split("\n\n")[0])
    parser.add_argument("processes", nargs="*", help="only these Procfile processes (default: all but release)")
    parser.add_argument("--settings", default="config.settings.local")
    args = parser.parse_args(argv)
    _setup_django(args.settings)
    from django.conf import settings

    from event_tasks.handlers import consuming_services

    broker_url = settings.CELERY_BROKER_URL
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": args.settings,
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("EVENT_TASKS_SERVICE", None)
    processes = procfile_processes(ROOT / "Procfile")
    chosen = args.processes or [p for p in processes if p != "release"]
    unknown = sorted(set(chosen) - set(processes))
    if unknown:
        parser.error(f"not in the Procfile: {', '.join(unknown)}")
    redis_proc = None
    if broker_url.startswith("redis") and not _redis_answers(broker_url):
        var_dir = Path(settings.VAR_DIR)
        redis_proc = _start_redis(broker_url, var_dir)
        print(f"broker: started redis-server for {broker_url} (stopped at the end)")
    try:
        services = sorted(set(consuming_services()) | {p.split("_", 1)[1] for p in chosen if p.startswith("relay_")})
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda s: _run(
                        [sys.executable, "manage.py", "migrate", "-v", "0"], {**env, "EVENT_TASKS_SERVICE": s}
                    ),
                    services,
                )
            )
        _run([sys.executable, "manage.py", "migrate", "-v", "0"], env)
        print(f"databases migrated: {', '.join(services)} (+ tooling) under {settings.VAR_DIR}")
        for line in _run([sys.executable, "manage.py", "events", "declare"], env).splitlines():
            print(f"release: {line}")
        print(f"starting {', '.join(chosen)} (Ctrl-C stops them all)", flush=True)
        return subprocess.call(
            [str(BIN / "honcho"), "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start", *chosen], cwd=ROOT, env=env
        )
    except KeyboardInterrupt:
        return 0
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
