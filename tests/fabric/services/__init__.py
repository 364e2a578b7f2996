"""Probe services for the fabric tests: each handler appends what it saw to a JSON-lines file.

Behaviour is steered by the event key: ``fail:<service>:<n>`` makes that service's handler fail
its first n attempts; ``fail:<service>:always`` makes it fail every time.
"""
from __future__ import annotations

import json
import os
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
    line = json.dumps({"service": service, "id": event.id, "type": event.type, "key": event.key,
                       "n": event.data["n"], "source": event.source, "attempt": attempt,
                       "pid": os.getpid()}) + "\n"
    fd = os.open(record_path(service), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    key = event.key or ""
    if key.startswith(f"fail:{service}:"):
        times = key.rsplit(":", 1)[1]
        if times == "always" or attempt <= int(times):
            raise RuntimeError(f"{service} fails attempt {attempt} on purpose")
