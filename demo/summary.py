"""Print one service's projection as JSON: ``EVENT_TASKS_SERVICE=<service> python -m demo.summary``."""

from __future__ import annotations

import importlib
import json
import os

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()
    from django.conf import settings
    from django_celery_results.models import TaskResult

    from event_tasks.models import DeadLetter, ProcessedEvent

    service = settings.EVENT_TASKS_SERVICE
    module = importlib.import_module(f"{settings.CONSUMERS_PACKAGE}.{service}.summary")
    report = module.summary()
    # A delivery that succeeded leaves duplicate marks (a result row only if it was retried first).
    report["applied"] = ProcessedEvent.objects.values("event_id").distinct().count()
    report["results"] = {
        status: TaskResult.objects.filter(status=status).count() for status in ("SUCCESS", "FAILURE", "RETRY")
    }
    report["dead_letters"] = [
        {
            "event_type": d.event_type,
            "event_id": d.event_id,
            "reason": d.reason,
            "detail": d.detail[:300],
            "attempts": d.attempts,
        }
        for d in DeadLetter.objects.order_by("id")
    ]
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
