"""Studio's projection, in the Studio database (use case 8, from discovery's Publisher).

* :class:`PublishedSchedule`: the schedule and pacing Publisher published for a course run,
  which Studio shows on the run's schedule settings instead of asking discovery.
"""

from __future__ import annotations

from django.db import models


class PublishedSchedule(models.Model):
    """A course run's schedule as Publisher last published it, in Studio's terms."""

    class Pacing(models.TextChoices):
        INSTRUCTOR = "instructor", "Instructor-paced"
        SELF = "self", "Self-paced"

    course_run_key = models.CharField(max_length=255, unique=True, help_text="course-v1:Org+Course+Run")
    title = models.CharField(max_length=255)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    enrollment_start = models.DateTimeField(null=True, blank=True)
    enrollment_end = models.DateTimeField(null=True, blank=True)
    pacing = models.CharField(max_length=16, choices=Pacing.choices)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["course_run_key"]

    def __str__(self) -> str:
        return f"{self.course_run_key} {self.pacing}-paced from {self.start:%Y-%m-%d}"
