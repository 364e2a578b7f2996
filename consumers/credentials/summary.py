"""What credentials' projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from .models import (
    CatalogCourse,
    CatalogCourseRun,
    CatalogProgram,
    Certificate,
    ProgramCourse,
    ProgramIntent,
    UserGrade,
)


def summary() -> dict[str, Any]:
    rows = [
        f"certificate: {c.username} {c.course_run_key} {c.mode} {c.status} (LMS: {c.lms_status})"
        for c in Certificate.objects.all()[:10]
    ]
    rows += [
        f"grade: user {g.user_id} {g.course_run_key} "
        f"{'?' if g.percent_grade is None else f'{g.percent_grade:.0%}'} {g.letter_grade or '-'} "
        f"passing={'?' if g.is_passing is None else g.is_passing}"
        for g in UserGrade.objects.all()[:10]
    ]
    rows += [
        f"program: {p.title} ({p.program_type}, {p.status}): "
        + ", ".join(p.courses.values_list("course_key", flat=True))
        for p in CatalogProgram.objects.prefetch_related("courses")[:10]
    ]
    rows += [
        f"course: {c.key} {c.title!r} runs: " + ", ".join(r.key for r in c.runs.all())
        for c in CatalogCourse.objects.prefetch_related("runs")[:10]
    ]
    rows += [f"intent: {i.username} {i.intent} {i.program_title}" for i in ProgramIntent.objects.all()[:10]]
    return {
        "counts": {
            "certificates": Certificate.objects.count(),
            "awarded_certificates": Certificate.objects.filter(status=Certificate.Status.AWARDED).count(),
            "grades": UserGrade.objects.count(),
            "passing_grades": UserGrade.objects.filter(is_passing=True).count(),
            "program_intents": ProgramIntent.objects.count(),
            "catalog_courses": CatalogCourse.objects.count(),
            "catalog_course_runs": CatalogCourseRun.objects.count(),
            "catalog_programs": CatalogProgram.objects.count(),
            "program_courses": ProgramCourse.objects.count(),
        },
        "rows": rows,
    }
