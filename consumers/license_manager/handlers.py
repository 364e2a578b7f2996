"""The license manager's event handlers: queue ``events.license_manager``, its own database.

Consumes, from the LMS (use case 5):

* ``org.openedx.enterprise.licensed_course_enrollment.changed.v1``: a learner's license-backed
  enrollment was created, unenrolled or revoked.
"""

from __future__ import annotations

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.enterprise import LICENSED_COURSE_ENROLLMENT_CHANGED

from .models import LicensedEnrollment


@consumer(LICENSED_COURSE_ENROLLMENT_CHANGED)
def record_licensed_enrollment(event: Event) -> None:
    """Keep each licensed enrollment's latest state."""
    licensed = event.data["licensed_course_enrollment"]
    enrollment = licensed["enterprise_course_enrollment"]
    customer_user = enrollment["enterprise_customer_user"]
    apply_latest(
        LicensedEnrollment,
        event,
        lookup={"uuid": licensed["uuid"]},
        values={
            "license_uuid": licensed["license_uuid"],
            "enterprise_customer_uuid": customer_user["enterprise_customer_uuid"],
            "lms_user_id": customer_user["user_id"],
            "course_run_key": enrollment["course_id"],
            "is_revoked": licensed["is_revoked"],
            "unenrolled": bool(enrollment["unenrolled"]),
            "unenrolled_at": enrollment["unenrolled_at"],
        },
    )
