"""Credentials' projection, in the credentials database.

From the LMS (use cases 3 and 7):

* :class:`Certificate`: each learner's course certificate, awarded or revoked;
* :class:`UserGrade`: each learner's course grade and passing status;
* :class:`ProgramIntent`: what a learner said about pursuing a program.

From discovery, a mirror of the catalog (use case 2):

* :class:`CatalogCourse` and its :class:`CatalogCourseRun` rows;
* :class:`CatalogProgram` and its membership, :class:`ProgramCourse`.
"""

from __future__ import annotations

from django.db import models


class Certificate(models.Model):
    """A learner's certificate for a course run."""

    class Status(models.TextChoices):
        AWARDED = "awarded", "Awarded"
        REVOKED = "revoked", "Revoked"

    user_id = models.PositiveBigIntegerField()
    username = models.CharField(max_length=150)
    course_run_key = models.CharField(max_length=255, db_index=True)
    mode = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices)
    lms_status = models.CharField(max_length=32, help_text="The LMS's own certificate status")
    grade = models.CharField(max_length=32, blank=True)
    download_url = models.CharField(max_length=500, blank=True)
    last_event_time = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "course_run_key"], name="credentials_one_certificate_per_learner_run"
            )
        ]
        ordering = ["course_run_key", "username"]

    def __str__(self) -> str:
        return f"{self.username} {self.course_run_key} {self.mode} {self.status}"


class UserGrade(models.Model):
    """A learner's grade in a course run.

    Two event types write it: the grade summary (percent, letter, passed time) and the passing
    status. Each keeps its own event time, so one never blocks or undoes the other.
    """

    user_id = models.PositiveBigIntegerField()
    course_run_key = models.CharField(max_length=255, db_index=True)
    percent_grade = models.FloatField(null=True, blank=True)
    letter_grade = models.CharField(max_length=32, blank=True)
    passed_timestamp = models.DateTimeField(null=True, blank=True)
    grade_event_time = models.DateTimeField(null=True, blank=True)
    is_passing = models.BooleanField(null=True, blank=True)
    passing_event_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "course_run_key"], name="credentials_one_grade_per_learner_run")
        ]
        ordering = ["course_run_key", "user_id"]

    def __str__(self) -> str:
        return f"user {self.user_id} {self.course_run_key} {self.percent_grade} passing={self.is_passing}"


class ProgramIntent(models.Model):
    """A learner's latest stated intent about a program."""

    class Intent(models.TextChoices):
        INTENDS_TO_PURSUE = "intends_to_pursue", "Intends to pursue"
        CONSIDERING = "considering", "Considering"
        NOT_PURSUING = "not_pursuing", "Not pursuing"

    user_id = models.PositiveBigIntegerField()
    username = models.CharField(max_length=150)
    program_uuid = models.UUIDField(db_index=True)
    program_title = models.CharField(max_length=255)
    intent = models.CharField(max_length=32, choices=Intent.choices)
    last_event_time = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "program_uuid"], name="credentials_one_intent_per_learner_program"
            )
        ]
        ordering = ["program_title", "username"]

    def __str__(self) -> str:
        return f"{self.username} {self.intent} {self.program_title}"


class CatalogCourse(models.Model):
    """A course of the catalog (mirrored from discovery)."""

    uuid = models.UUIDField(unique=True)
    key = models.CharField(max_length=255, unique=True, help_text="Org+Course")
    title = models.CharField(max_length=255)
    short_description = models.TextField(blank=True)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} {self.title!r}"


class CatalogCourseRun(models.Model):
    """A run of a catalog course; replaced with its course's record."""

    course = models.ForeignKey(CatalogCourse, on_delete=models.CASCADE, related_name="runs")
    key = models.CharField(max_length=255, unique=True, help_text="course-v1:Org+Course+Run")
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    pacing_type = models.CharField(max_length=32)
    status = models.CharField(max_length=32)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class CatalogProgram(models.Model):
    """A program of the catalog (mirrored from discovery)."""

    uuid = models.UUIDField(unique=True)
    title = models.CharField(max_length=255)
    program_type = models.CharField(max_length=100)
    status = models.CharField(max_length=32)
    marketing_slug = models.CharField(max_length=255, blank=True)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return f"{self.title} ({self.program_type})"


class ProgramCourse(models.Model):
    """A course's membership in a program; replaced with its program's record.

    Refers to the course by uuid and key, not by foreign key: the program event may arrive
    before the course's own event.
    """

    program = models.ForeignKey(CatalogProgram, on_delete=models.CASCADE, related_name="courses")
    course_uuid = models.UUIDField()
    course_key = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "course_uuid"], name="credentials_course_once_per_program")
        ]
        ordering = ["program", "course_key"]

    def __str__(self) -> str:
        return f"{self.course_key} in {self.program}"
