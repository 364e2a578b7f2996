"""The LMS's projection, in the LMS database.

* :class:`ExamOutcome`: what each reviewed exam attempt means for the learner's grade, credit
  eligibility, completion and certificate (use case 6, from the exams service);
* :class:`LearnerLicense`: each enterprise license and whether it grants access (use case 5,
  from the license manager);
* :class:`PublishedCourseRun` and its :class:`CourseMode` rows: runs as Publisher published them,
  with their enrollment window and seats (use case 8, from discovery).
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone


class ExamOutcome(models.Model):
    """The latest exam attempt outcome of a learner for one exam, and its effects in the LMS."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"
        ERROR = "error", "Error"
        RESET = "reset", "Reset"

    class Credit(models.TextChoices):
        PENDING = "pending", "Pending"
        SATISFIED = "satisfied", "Satisfied"
        FAILED = "failed", "Failed"

    user_id = models.PositiveBigIntegerField()
    username = models.CharField(max_length=150)
    course_run_key = models.CharField(max_length=255, db_index=True)
    usage_key = models.CharField(max_length=255, help_text="The exam's subsection")
    exam_type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices)
    credit_requirement_status = models.CharField(
        max_length=16, choices=Credit.choices, help_text="The exam as a credit requirement"
    )
    completed = models.BooleanField(help_text="The exam subsection counts as completed")
    grade_zeroed = models.BooleanField(help_text="The subsection grade is overridden to zero")
    certificate_blocked = models.BooleanField(help_text="No certificate while this stands")
    last_event_time = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "usage_key"], name="lms_one_exam_outcome_per_learner_exam")
        ]
        ordering = ["course_run_key", "usage_key", "user_id"]

    def __str__(self) -> str:
        return f"{self.username} {self.usage_key} {self.status}"


class LearnerLicense(models.Model):
    """An enterprise subscription license, as the license manager last reported it."""

    class Status(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        ACTIVATED = "activated", "Activated"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    uuid = models.UUIDField(unique=True)
    subscription_plan_uuid = models.UUIDField(db_index=True)
    enterprise_customer_uuid = models.UUIDField()
    user_email = models.EmailField()
    lms_user_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    activation_date = models.DateTimeField(null=True, blank=True)
    expiration_date = models.DateTimeField()
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["user_email"]

    def __str__(self) -> str:
        return f"{self.user_email} {self.status} until {self.expiration_date:%Y-%m-%d}"

    def grants_access(self, now: dt.datetime | None = None) -> bool:
        """Whether the learner may use licensed content now."""
        return self.status == self.Status.ACTIVATED and self.expiration_date > (now or timezone.now())


class PublishedCourseRun(models.Model):
    """A course run as Publisher last published it."""

    key = models.CharField(max_length=255, unique=True, help_text="course-v1:Org+Course+Run")
    course_key = models.CharField(max_length=255, help_text="Org+Course")
    title = models.CharField(max_length=255)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    enrollment_start = models.DateTimeField(null=True, blank=True)
    enrollment_end = models.DateTimeField(null=True, blank=True)
    pacing_type = models.CharField(max_length=32)
    marketing_url = models.URLField(max_length=500, null=True, blank=True)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} {self.title!r}"


class CourseMode(models.Model):
    """An enrollment mode (seat) of a published run; replaced with its run."""

    course_run = models.ForeignKey(PublishedCourseRun, on_delete=models.CASCADE, related_name="modes")
    mode_slug = models.CharField(max_length=100)
    min_price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    expiration_datetime = models.DateTimeField(null=True, blank=True, help_text="Upgrade deadline")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["course_run", "mode_slug"], name="lms_one_mode_slug_per_run")]
        ordering = ["course_run", "mode_slug"]

    def __str__(self) -> str:
        return f"{self.course_run.key} {self.mode_slug} {self.min_price} {self.currency}"
