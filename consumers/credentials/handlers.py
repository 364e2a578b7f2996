"""Credentials' event handlers: queue ``events.credentials``, credentials database.

Consumes, from the LMS (use cases 3 and 7):

* ``org.openedx.learning.certificate.created.v1``, ``…certificate.changed.v1``,
  ``…certificate.revoked.v1``: the learner's course certificate;
* ``org.openedx.learning.course.persistent_grade_summary.changed.v1``: the course grade;
* ``org.openedx.learning.course.passing.status.updated.v1``: the passing status;
* ``org.openedx.learning.program.intent.changed.v1``: program intents.

Consumes, from discovery (use case 2):

* ``org.openedx.catalog.course.created.v1``, ``…course.updated.v1``: courses and their runs;
* ``org.openedx.catalog.program.created.v1``, ``…program.updated.v1``: programs and membership.
"""

from __future__ import annotations

from django.db import transaction

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.catalog import (
    CATALOG_COURSE_CREATED,
    CATALOG_COURSE_UPDATED,
    CATALOG_PROGRAM_CREATED,
    CATALOG_PROGRAM_UPDATED,
)
from schemas.learning import (
    CERTIFICATE_CHANGED,
    CERTIFICATE_CREATED,
    CERTIFICATE_REVOKED,
    COURSE_PASSING_STATUS_UPDATED,
    PERSISTENT_GRADE_SUMMARY_CHANGED,
    PROGRAM_INTENT_CHANGED,
)

from .models import (
    CatalogCourse,
    CatalogCourseRun,
    CatalogProgram,
    Certificate,
    ProgramCourse,
    ProgramIntent,
    UserGrade,
)

#: The LMS status of a certificate the learner holds; every other status means "not awarded".
AWARDED_LMS_STATUS = "downloadable"


# --- from the LMS -----------------------------------------------------------------------------
@consumer(CERTIFICATE_CREATED)
@consumer(CERTIFICATE_CHANGED)
@consumer(CERTIFICATE_REVOKED)
def record_certificate(event: Event) -> None:
    """Keep each learner's certificate per run as the LMS last described it."""
    cert = event.data["certificate"]
    awarded = event.type != CERTIFICATE_REVOKED and cert["current_status"] == AWARDED_LMS_STATUS
    apply_latest(
        Certificate,
        event,
        lookup={
            "user_id": cert["user"]["id"],
            "course_run_key": cert["course"]["course_key"],
        },
        values={
            "username": cert["user"]["pii"]["username"],
            "mode": cert["mode"],
            "status": Certificate.Status.AWARDED if awarded else Certificate.Status.REVOKED,
            "lms_status": cert["current_status"],
            "grade": cert["grade"],
            "download_url": cert["download_url"],
        },
    )


@consumer(PERSISTENT_GRADE_SUMMARY_CHANGED)
def record_grade(event: Event) -> None:
    """Keep the latest course grade (its own event time: the passing status has another)."""
    grade = event.data["grade"]
    apply_latest(
        UserGrade,
        event,
        time_field="grade_event_time",
        lookup={
            "user_id": grade["user_id"],
            "course_run_key": grade["course"]["course_key"],
        },
        values={
            "percent_grade": grade["percent_grade"],
            "letter_grade": grade["letter_grade"],
            "passed_timestamp": grade["passed_timestamp"],
        },
    )


@consumer(COURSE_PASSING_STATUS_UPDATED)
def record_passing_status(event: Event) -> None:
    """Keep the latest passing status (its own event time: the grade summary has another)."""
    status = event.data["course_passing_status"]
    apply_latest(
        UserGrade,
        event,
        time_field="passing_event_time",
        lookup={
            "user_id": status["user"]["id"],
            "course_run_key": status["course"]["course_key"],
        },
        values={"is_passing": status["is_passing"]},
    )


@consumer(PROGRAM_INTENT_CHANGED)
def record_program_intent(event: Event) -> None:
    """Keep each learner's latest intent per program."""
    intent = event.data["program_intent"]
    apply_latest(
        ProgramIntent,
        event,
        lookup={
            "user_id": intent["user"]["id"],
            "program_uuid": intent["program"]["uuid"],
        },
        values={
            "username": intent["user"]["pii"]["username"],
            "program_title": intent["program"]["title"],
            "intent": intent["intent"],
        },
    )


# --- from discovery ---------------------------------------------------------------------------
@consumer(CATALOG_COURSE_CREATED)
@consumer(CATALOG_COURSE_UPDATED)
def mirror_course(event: Event) -> None:
    """Mirror a catalog course and replace its runs with the ones the event lists."""
    course = event.data["course"]
    with transaction.atomic():
        row, applied = apply_latest(
            CatalogCourse,
            event,
            lookup={"uuid": course["uuid"]},
            values={
                "key": course["key"],
                "title": course["title"],
                "short_description": course["short_description"],
            },
        )
        if not applied:
            return
        keys = [run["key"] for run in course["course_runs"]]
        row.runs.exclude(key__in=keys).delete()
        for run in course["course_runs"]:
            CatalogCourseRun.objects.update_or_create(
                key=run["key"],
                defaults={
                    "course": row,
                    "start": run["start"],
                    "end": run["end"],
                    "pacing_type": run["pacing_type"],
                    "status": run["status"],
                },
            )


@consumer(CATALOG_PROGRAM_CREATED)
@consumer(CATALOG_PROGRAM_UPDATED)
def mirror_program(event: Event) -> None:
    """Mirror a program and replace its membership with the courses the event lists."""
    program = event.data["program"]
    with transaction.atomic():
        row, applied = apply_latest(
            CatalogProgram,
            event,
            lookup={"uuid": program["uuid"]},
            values={
                "title": program["title"],
                "program_type": program["program_type"],
                "status": program["status"],
                "marketing_slug": program["marketing_slug"],
            },
        )
        if not applied:
            return
        uuids = [course["uuid"] for course in program["courses"]]
        row.courses.exclude(course_uuid__in=uuids).delete()
        for course in program["courses"]:
            ProgramCourse.objects.update_or_create(
                program=row, course_uuid=course["uuid"], defaults={"course_key": course["key"]}
            )
