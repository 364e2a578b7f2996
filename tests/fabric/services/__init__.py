"""Probe services for the fabric tests: each handler appends what it saw to a JSON-lines file.

Behaviour is steered by the event key (``<mode>:<service>:<arg>``):

* ``fail:<service>:<n>`` fails the first n attempts; ``fail:<service>:always`` every time;
* ``slow:<service>:<seconds>`` sleeps that long on the first attempt (time to kill the worker);
  ``always_slow:<service>:<seconds>`` on every attempt;
* ``exit:<service>:always`` kills the worker process (``os._exit``): a poison message;
* ``blocked:<service>:x`` fails while the file ``blocked-<service>`` exists in the record dir.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from django.conf import settings

from event_tasks import Event


def record_path(service: str) -> Path:
    return Path(settings.TEST_RECORD_DIR) / f"{service}.jsonl"


def seen(service: str, event_id: str) -> int:
    path = record_path(service)
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if json.loads(line)["id"] == event_id)


def record(service: str, event: Event) -> None:
    """Append one line per handler call; then fail if the key says so."""
    attempt = seen(service, event.id) + 1
    line = (
        json.dumps(
            {
                "service": service,
                "id": event.id,
                "type": event.type,
                "key": event.key,
                "n": event.data["n"],
                "source": event.source,
                "attempt": attempt,
                "pid": os.getpid(),
            }
        )
        + "\n"
    )
    fd = os.open(record_path(service), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    mode, _, rest = (event.key or "").partition(":")
    target, _, arg = rest.partition(":")
    if target != service:
        return
    if mode == "fail" and (arg == "always" or attempt <= int(arg)):
        raise RuntimeError(f"{service} fails attempt {attempt} on purpose")
    if (mode == "slow" and attempt == 1) or mode == "always_slow":
        time.sleep(float(arg))
    if mode == "exit":
        os._exit(3)
    if mode == "blocked" and (Path(settings.TEST_RECORD_DIR) / f"blocked-{service}").exists():
        raise RuntimeError(f"{service} is blocked")
