"""What the LMS's projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from .models import CourseMode, ExamOutcome, LearnerLicense, PublishedCourseRun


def summary() -> dict[str, Any]:
    rows = [
        f"exam: {o.username} {o.usage_key.rsplit('@', 1)[-1]} in {o.course_run_key}: {o.status}, "
        f"credit {o.credit_requirement_status}, completed={o.completed}, grade zeroed={o.grade_zeroed}, "
        f"certificate blocked={o.certificate_blocked}"
        for o in ExamOutcome.objects.all()[:10]
    ]
    rows += [
        f"license: {lic.user_email} {lic.status} until {lic.expiration_date:%Y-%m-%d} "
        f"(grants access: {lic.grants_access()})"
        for lic in LearnerLicense.objects.all()[:10]
    ]
    rows += [
        f"run: {r.key} {r.title!r} enrollment {_day(r.enrollment_start)}..{_day(r.enrollment_end)}, modes: "
        + ", ".join(f"{m.mode_slug} {m.min_price} {m.currency}" for m in r.modes.all())
        for r in PublishedCourseRun.objects.prefetch_related("modes")[:10]
    ]
    return {
        "counts": {
            "exam_outcomes": ExamOutcome.objects.count(),
            "exam_outcomes_blocking_certificates": ExamOutcome.objects.filter(certificate_blocked=True).count(),
            "licenses": LearnerLicense.objects.count(),
            "activated_licenses": LearnerLicense.objects.filter(status=LearnerLicense.Status.ACTIVATED).count(),
            "published_course_runs": PublishedCourseRun.objects.count(),
            "course_modes": CourseMode.objects.count(),
        },
        "rows": rows,
    }


def _day(value: Any) -> str:
    return value.date().isoformat() if value else "?"
