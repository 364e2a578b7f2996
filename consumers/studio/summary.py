"""What Studio's projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from .models import PublishedSchedule


def summary() -> dict[str, Any]:
    return {
        "counts": {"published_schedules": PublishedSchedule.objects.count()},
        "rows": [
            f"schedule: {s.course_run_key} {s.title!r} {s.pacing}-paced {s.start:%Y-%m-%d}..{s.end:%Y-%m-%d}"
            if s.end
            else f"schedule: {s.course_run_key} {s.title!r} {s.pacing}-paced from {s.start:%Y-%m-%d}"
            for s in PublishedSchedule.objects.all()[:10]
        ],
    }
