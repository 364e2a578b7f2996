"""The license manager's projection, in its own database (use case 5, from the LMS).

* :class:`LicensedEnrollment`: each course enrollment a license pays for, and whether it still
  stands (what license utilisation and revocation rules need).
"""

from __future__ import annotations

from django.db import models


class LicensedEnrollment(models.Model):
    """A license-backed enterprise course enrollment, as the LMS last reported it."""

    uuid = models.UUIDField(unique=True)
    license_uuid = models.UUIDField(db_index=True)
    enterprise_customer_uuid = models.UUIDField()
    lms_user_id = models.PositiveBigIntegerField()
    course_run_key = models.CharField(max_length=255)
    is_revoked = models.BooleanField()
    unenrolled = models.BooleanField()
    unenrolled_at = models.DateTimeField(null=True, blank=True)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["license_uuid", "course_run_key"]

    def __str__(self) -> str:
        return f"user {self.lms_user_id} {self.course_run_key} ({'active' if self.is_active else 'ended'})"

    @property
    def is_active(self) -> bool:
        return not (self.is_revoked or self.unenrolled)
