"""The LMS's handlers: exam outcomes, learner licenses, and Publisher's published runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from consumers.lms import handlers
from consumers.lms.models import CourseMode, ExamOutcome, LearnerLicense, PublishedCourseRun
from consumers.lms.summary import summary
from demo.scenario import (
    ADA,
    ADA_LICENSE,
    GRACE,
    PLAN_2025,
    PLAN_2026,
    PY_COURSE,
    PY_FINAL,
    PY_RUN,
    PY_RUN_UUID,
    exam,
    license_,
    published_run,
)
from event_tasks.testing import make_event
from schemas.catalog import COURSE_RUN_PUBLISHED
from schemas.enterprise import LICENSE_ACTIVATED, LICENSE_ASSIGNED, LICENSE_RENEWED, LICENSE_REVOKED
from schemas.exams import (
    EXAM_ATTEMPT_ERRORED,
    EXAM_ATTEMPT_REJECTED,
    EXAM_ATTEMPT_RESET,
    EXAM_ATTEMPT_SUBMITTED,
    EXAM_ATTEMPT_VERIFIED,
)

from .projection_helpers import at

pytestmark = pytest.mark.django_db


# --- exam outcomes ------------------------------------------------------------------------------
def exam_event(event_type: str, seconds: float, user_id: int = ADA):
    return make_event(event_type, exam(user_id, PY_RUN, PY_FINAL), key=PY_RUN, time=at(seconds), source="exams")


def outcome(user_id: int = ADA) -> ExamOutcome:
    return ExamOutcome.objects.get(user_id=user_id, usage_key=PY_FINAL)


def test_a_verified_review_satisfies_the_credit_requirement():
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_SUBMITTED, 1))
    row = outcome()
    assert (row.status, row.credit_requirement_status, row.completed) == ("submitted", "pending", True)
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_VERIFIED, 2))
    row = outcome()
    assert (row.status, row.credit_requirement_status, row.completed, row.grade_zeroed, row.certificate_blocked) == (
        "verified",
        "satisfied",
        True,
        False,
        False,
    )
    assert (row.username, row.course_run_key, row.exam_type) == ("ada", PY_RUN, "proctored")


def test_a_rejected_review_zeroes_the_grade_and_blocks_the_certificate():
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_REJECTED, 2, GRACE))
    row = outcome(GRACE)
    assert (row.status, row.credit_requirement_status, row.grade_zeroed, row.certificate_blocked) == (
        "rejected",
        "failed",
        True,
        True,
    )


@pytest.mark.parametrize("event_type", [EXAM_ATTEMPT_ERRORED, EXAM_ATTEMPT_RESET])
def test_an_error_or_a_reset_lets_the_learner_retake_the_exam(event_type):
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_REJECTED, 1))
    handlers.apply_exam_outcome(exam_event(event_type, 2))
    row = outcome()
    assert (row.completed, row.credit_requirement_status, row.grade_zeroed, row.certificate_blocked) == (
        False,
        "pending",
        False,
        False,
    )


def test_a_late_submission_does_not_undo_a_review():
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_REJECTED, 5))
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_SUBMITTED, 1))
    assert outcome().status == "rejected" and outcome().last_event_time == at(5)


def test_a_repeated_exam_event_is_harmless():
    event = exam_event(EXAM_ATTEMPT_VERIFIED, 1)
    handlers.apply_exam_outcome(event)
    handlers.apply_exam_outcome(event)
    assert ExamOutcome.objects.count() == 1 and outcome().status == "verified"


# --- learner licenses ---------------------------------------------------------------------------
def license_event(event_type: str, seconds: float, **kwargs):
    plan = kwargs.pop("plan", PLAN_2025)
    return make_event(event_type, license_(ADA_LICENSE, ADA, plan, **kwargs), key=ADA_LICENSE, time=at(seconds))


def test_a_license_is_assigned_activated_renewed_and_revoked():
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    handlers.record_license(license_event(LICENSE_ASSIGNED, 1))
    lic = LearnerLicense.objects.get()
    assert (lic.status, lic.lms_user_id, lic.grants_access(now)) == ("assigned", None, False)

    handlers.record_license(license_event(LICENSE_ACTIVATED, 2, activated=True))
    lic.refresh_from_db()
    assert (lic.status, lic.lms_user_id, lic.grants_access(now)) == ("activated", ADA, True)

    handlers.record_license(
        license_event(LICENSE_RENEWED, 3, activated=True, plan=PLAN_2026, expiration="2026-12-31T23:59:59Z")
    )
    lic.refresh_from_db()
    assert str(lic.subscription_plan_uuid) == PLAN_2026 and lic.expiration_date.year == 2026
    assert lic.grants_access(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))

    handlers.record_license(license_event(LICENSE_REVOKED, 4, activated=True, revoked=True))
    lic.refresh_from_db()
    assert (lic.status, lic.grants_access(now)) == ("revoked", False)


def test_a_late_activation_does_not_undo_a_revocation():
    handlers.record_license(license_event(LICENSE_REVOKED, 5, activated=True, revoked=True))
    handlers.record_license(license_event(LICENSE_ACTIVATED, 2, activated=True))
    assert LearnerLicense.objects.get().status == "revoked"


def test_a_repeated_license_event_is_harmless():
    event = license_event(LICENSE_ACTIVATED, 1, activated=True)
    handlers.record_license(event)
    handlers.record_license(event)
    assert LearnerLicense.objects.count() == 1 and LearnerLicense.objects.get().status == "activated"


# --- Publisher's published runs -----------------------------------------------------------------
def published_event(seconds: float, price: str, enrollment_end: str = "2025-09-15T00:00:00Z"):
    data = published_run(PY_RUN, PY_RUN_UUID, PY_COURSE, verified_price=price, enrollment_end=enrollment_end)
    return make_event(COURSE_RUN_PUBLISHED, data, key=PY_RUN, time=at(seconds))


def modes() -> dict[str, Decimal]:
    return dict(CourseMode.objects.values_list("mode_slug", "min_price"))


def test_a_published_run_sets_its_enrollment_window_and_modes():
    handlers.record_published_run(published_event(1, "49.00"))
    run = PublishedCourseRun.objects.get()
    assert (run.key, run.course_key, run.title) == (PY_RUN, PY_COURSE, "Python for Everyone")
    assert run.enrollment_end.date().isoformat() == "2025-09-15"
    assert modes() == {"audit": Decimal("0.00"), "verified": Decimal("49.00")}


def test_a_republished_run_replaces_its_modes_and_an_older_publish_is_ignored():
    handlers.record_published_run(published_event(1, "49.00"))
    handlers.record_published_run(published_event(3, "39.00", "2025-10-01T00:00:00Z"))
    handlers.record_published_run(published_event(2, "59.00"))  # older: ignored
    assert modes()["verified"] == Decimal("39.00")
    assert PublishedCourseRun.objects.get().enrollment_end.date().isoformat() == "2025-10-01"


def test_a_repeated_publish_is_harmless():
    event = published_event(1, "49.00")
    handlers.record_published_run(event)
    handlers.record_published_run(event)
    assert (PublishedCourseRun.objects.count(), CourseMode.objects.count()) == (1, 2)


def test_summary_reports_counts_and_rows():
    handlers.apply_exam_outcome(exam_event(EXAM_ATTEMPT_REJECTED, 1, GRACE))
    handlers.record_published_run(published_event(1, "49.00"))
    result = summary()
    assert result["counts"]["exam_outcomes_blocking_certificates"] == 1
    assert result["counts"]["course_modes"] == 2
    assert any(row.startswith("exam: grace final_exam") for row in result["rows"])
