"""The LMS's event handlers: queue ``events.lms``, LMS database.

Consumes, from the exams service (use case 6):

* ``org.openedx.learning.exam.attempt.submitted.v1``, ``…verified.v1``, ``…rejected.v1``,
  ``…errored.v1``, ``…reset.v1``: grade, credit, completion and certificate effects;

from the license manager (use case 5):

* ``org.openedx.enterprise.license.assigned.v1``, ``…activated.v1``, ``…renewed.v1``,
  ``…expired.v1``, ``…revoked.v1``: whether a learner's license grants access;

from discovery's Publisher (use case 8):

* ``org.openedx.catalog.course_run.published.v1``: enrollment window and seats of a run.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.catalog import COURSE_RUN_PUBLISHED
from schemas.enterprise import (
    LICENSE_ACTIVATED,
    LICENSE_ASSIGNED,
    LICENSE_EXPIRED,
    LICENSE_RENEWED,
    LICENSE_REVOKED,
    LICENSE_STATE_AFTER,
)
from schemas.exams import (
    EXAM_ATTEMPT_ERRORED,
    EXAM_ATTEMPT_REJECTED,
    EXAM_ATTEMPT_RESET,
    EXAM_ATTEMPT_SUBMITTED,
    EXAM_ATTEMPT_VERIFIED,
)

from .models import CourseMode, ExamOutcome, LearnerLicense, PublishedCourseRun

Status, Credit = ExamOutcome.Status, ExamOutcome.Credit
#: What each exam attempt event means in the LMS. A rejected review zeroes the exam's grade and
#: holds the certificate; an error or a reset lets the learner take the exam again.
EXAM_EFFECTS: dict[str, dict[str, Any]] = {
    EXAM_ATTEMPT_SUBMITTED: {
        "status": Status.SUBMITTED,
        "credit_requirement_status": Credit.PENDING,
        "completed": True,
        "grade_zeroed": False,
        "certificate_blocked": False,
    },
    EXAM_ATTEMPT_VERIFIED: {
        "status": Status.VERIFIED,
        "credit_requirement_status": Credit.SATISFIED,
        "completed": True,
        "grade_zeroed": False,
        "certificate_blocked": False,
    },
    EXAM_ATTEMPT_REJECTED: {
        "status": Status.REJECTED,
        "credit_requirement_status": Credit.FAILED,
        "completed": True,
        "grade_zeroed": True,
        "certificate_blocked": True,
    },
    EXAM_ATTEMPT_ERRORED: {
        "status": Status.ERROR,
        "credit_requirement_status": Credit.PENDING,
        "completed": False,
        "grade_zeroed": False,
        "certificate_blocked": False,
    },
    EXAM_ATTEMPT_RESET: {
        "status": Status.RESET,
        "credit_requirement_status": Credit.PENDING,
        "completed": False,
        "grade_zeroed": False,
        "certificate_blocked": False,
    },
}


@consumer(EXAM_ATTEMPT_SUBMITTED)
@consumer(EXAM_ATTEMPT_VERIFIED)
@consumer(EXAM_ATTEMPT_REJECTED)
@consumer(EXAM_ATTEMPT_ERRORED)
@consumer(EXAM_ATTEMPT_RESET)
def apply_exam_outcome(event: Event) -> None:
    """Keep the latest outcome of each learner's exam and what it implies."""
    attempt = event.data["exam_attempt"]
    student = attempt["student_user"]
    apply_latest(
        ExamOutcome,
        event,
        lookup={
            "user_id": student["id"],
            "usage_key": attempt["usage_key"],
        },
        values={
            "username": student["pii"]["username"],
            "course_run_key": attempt["course_key"],
            "exam_type": attempt["exam_type"],
            **EXAM_EFFECTS[event.type],
        },
    )


@consumer(LICENSE_ASSIGNED)
@consumer(LICENSE_ACTIVATED)
@consumer(LICENSE_RENEWED)
@consumer(LICENSE_EXPIRED)
@consumer(LICENSE_REVOKED)
def record_license(event: Event) -> None:
    """Keep each license's latest state; the event type says what the state is."""
    lic = event.data["license"]
    apply_latest(
        LearnerLicense,
        event,
        lookup={"uuid": lic["uuid"]},
        values={
            "subscription_plan_uuid": lic["subscription_plan_uuid"],
            "enterprise_customer_uuid": lic["enterprise_customer_uuid"],
            "user_email": lic["user_email"],
            "lms_user_id": lic["lms_user_id"],
            "status": LICENSE_STATE_AFTER[event.type],
            "activation_date": lic["activation_date"],
            "expiration_date": lic["expiration_date"],
        },
    )


@consumer(COURSE_RUN_PUBLISHED)
def record_published_run(event: Event) -> None:
    """Keep each published run's enrollment window, and replace its modes with the seats sent."""
    run = event.data["course_run"]
    with transaction.atomic():
        row, applied = apply_latest(
            PublishedCourseRun,
            event,
            lookup={"key": run["key"]},
            values={
                "course_key": run["course_key"],
                "title": run["title"],
                "start": run["start"],
                "end": run["end"],
                "enrollment_start": run["enrollment_start"],
                "enrollment_end": run["enrollment_end"],
                "pacing_type": run["pacing_type"],
                "marketing_url": run["marketing_url"],
            },
        )
        if not applied:
            return
        row.modes.exclude(mode_slug__in=[seat["type"] for seat in run["seats"]]).delete()
        for seat in run["seats"]:
            CourseMode.objects.update_or_create(
                course_run=row,
                mode_slug=seat["type"],
                defaults={
                    "min_price": seat["price"],
                    "currency": seat["currency"],
                    "expiration_datetime": seat["upgrade_deadline"],
                },
            )
