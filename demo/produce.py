"""Send some scenario steps as one producing service: ``EVENT_TASKS_SERVICE=<owner> python -m demo.produce 3 4 5``.

Each step goes through the public ``send_event``, exactly as the producing service's code would.
"""

from __future__ import annotations

import os
import sys

import django


def main(indexes: list[int]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()
    from django.conf import settings

    from demo.scenario import STEPS
    from event_tasks import send_event

    for i in indexes:
        step = STEPS[i]
        if step.producer != settings.EVENT_TASKS_SERVICE:
            raise SystemExit(f"step {i} belongs to {step.producer}, this process is {settings.EVENT_TASKS_SERVICE}")
        event = send_event(step.event_type, step.data, key=step.key)
        print(f"{i}\t{event.id}\t{event.type}", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]])
