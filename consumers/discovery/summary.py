"""What discovery's projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from .models import CourseRun, CourseRunEnrollment


def summary() -> dict[str, Any]:
    active = dict(
        CourseRunEnrollment.objects.filter(is_active=True)
        .values("course_run_key")
        .annotate(n=Count("id"))
        .values_list("course_run_key", "n")
    )
    rows = [
        f"{r.key} {r.title or '(no title yet)'} [{r.status}, {r.pacing_type or 'pacing ?'}] "
        f"{_day(r.start)}..{_day(r.end)}, active enrollments: {active.get(r.key, 0)}"
        for r in CourseRun.objects.all()[:20]
    ]
    return {
        "counts": {
            "course_runs": CourseRun.objects.count(),
            "enrollments": CourseRunEnrollment.objects.count(),
            "active_enrollments": CourseRunEnrollment.objects.filter(is_active=True).count(),
        },
        "rows": rows,
    }


def _day(value: Any) -> str:
    return value.date().isoformat() if value else "?"
