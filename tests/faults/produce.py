"""The fault suite's producer: ``python -m tests.faults.produce COUNT OUT_FILE [RATE]``.

Sends COUNT probe events through the public ``send_event`` as service ``prober``: every third
inside ``transaction.atomic()`` (the outbox), the rest directly. A direct send refused with
``PublishError`` (broker restarting) is retried as a new event; the refused event's id is written
as ``unconfirmed`` (it was not acknowledged, so the producer cannot know whether it went out).
Writes ``<event id> <direct|outbox|unconfirmed>`` lines to OUT_FILE.
"""
from __future__ import annotations

import os
import sys
import time

import django


def main(count: int, out_path: str, rate: float) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from django.db import transaction

    from event_tasks import send_event
    from event_tasks.errors import PublishError
    from tests.fabric.schemas.probe import PROBE_CREATED

    started = time.monotonic()
    with open(out_path, "a") as out:
        for i in range(count):
            if i % 3 == 2:
                with transaction.atomic():
                    event = send_event(PROBE_CREATED, {"n": i})
                out.write(f"{event.id} outbox\n")
            else:
                while True:
                    try:
                        event = send_event(PROBE_CREATED, {"n": i})
                        break
                    except PublishError as exc:
                        out.write(f"{exc.event_id} unconfirmed\n")
                        time.sleep(0.2)
                out.write(f"{event.id} direct\n")
            out.flush()
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 250.0)
