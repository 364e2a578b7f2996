"""The license manager's handler: license-backed enterprise enrollments from the LMS."""

from __future__ import annotations

import pytest

from consumers.license_manager import handlers
from consumers.license_manager.models import LicensedEnrollment
from consumers.license_manager.summary import summary
from demo.scenario import ACME, ADA, ADA_DS_LICENSED, ADA_LICENSE, DS_RUN, licensed_enrollment
from event_tasks.testing import make_event
from schemas.enterprise import LICENSED_COURSE_ENROLLMENT_CHANGED

from .projection_helpers import at

pytestmark = pytest.mark.django_db


def changed(seconds: float, revoked: bool = False):
    data = licensed_enrollment(ADA_DS_LICENSED, 501, ADA, ADA_LICENSE, DS_RUN, revoked=revoked)
    return make_event(LICENSED_COURSE_ENROLLMENT_CHANGED, data, key=DS_RUN, time=at(seconds), source="lms")


def test_a_licensed_enrollment_is_recorded_then_revoked():
    handlers.record_licensed_enrollment(changed(1))
    row = LicensedEnrollment.objects.get()
    assert (str(row.license_uuid), str(row.enterprise_customer_uuid), row.lms_user_id, row.course_run_key) == (
        ADA_LICENSE,
        ACME,
        ADA,
        DS_RUN,
    )
    assert row.is_active

    handlers.record_licensed_enrollment(changed(2, revoked=True))
    row.refresh_from_db()
    assert (row.is_revoked, row.unenrolled, row.is_active) == (True, True, False)
    assert row.unenrolled_at is not None


def test_an_older_event_does_not_restore_a_revoked_enrollment():
    handlers.record_licensed_enrollment(changed(5, revoked=True))
    handlers.record_licensed_enrollment(changed(1))
    row = LicensedEnrollment.objects.get()
    assert row.is_revoked and row.last_event_time == at(5)


def test_a_repeated_event_is_harmless():
    event = changed(1)
    handlers.record_licensed_enrollment(event)
    handlers.record_licensed_enrollment(event)
    assert LicensedEnrollment.objects.count() == 1


def test_summary_reports_counts_and_rows():
    handlers.record_licensed_enrollment(changed(1))
    result = summary()
    assert result["counts"] == {"licensed_enrollments": 1, "active_licensed_enrollments": 1}
    assert DS_RUN in result["rows"][0]
