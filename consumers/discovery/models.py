"""Discovery's projection, in the discovery database.

* :class:`CourseRun`: each course run Studio created or edited (use case 1);
* :class:`CourseRunEnrollment`: each learner's enrollment per run, kept to count enrollments
  (use case 9: discovery subscribed to the LMS enrollment events without the LMS changing).
"""

from __future__ import annotations

from django.db import models


class CourseRun(models.Model):
    """A course run as Studio last described it."""

    class Pacing(models.TextChoices):
        INSTRUCTOR_PACED = "instructor_paced", "Instructor-paced"
        SELF_PACED = "self_paced", "Self-paced"

    class Status(models.TextChoices):
        UNPUBLISHED = "unpublished", "Unpublished"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    key = models.CharField(max_length=255, unique=True, help_text="course-v1:Org+Course+Run")
    course_key = models.CharField(max_length=255, db_index=True, help_text="Org+Course")
    run = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    enrollment_start = models.DateTimeField(null=True, blank=True)
    enrollment_end = models.DateTimeField(null=True, blank=True)
    pacing_type = models.CharField(max_length=32, choices=Pacing.choices, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.UNPUBLISHED)
    hidden = models.BooleanField(default=False)
    invitation_only = models.BooleanField(default=False)
    last_event_time = models.DateTimeField(help_text="Time of the Studio event this row reflects")

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} {self.title!r}"


class CourseRunEnrollment(models.Model):
    """One learner's enrollment in one run (only what counting needs)."""

    course_run_key = models.CharField(max_length=255, db_index=True)
    user_id = models.PositiveBigIntegerField()
    mode = models.CharField(max_length=100)
    is_active = models.BooleanField()
    last_event_time = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["course_run_key", "user_id"], name="discovery_one_enrollment_per_learner_run"
            )
        ]
        ordering = ["course_run_key", "user_id"]

    def __str__(self) -> str:
        state = "active" if self.is_active else "inactive"
        return f"user {self.user_id} in {self.course_run_key} ({self.mode}, {state})"
