"""Credentials' handlers: certificates, grades and program intents from the LMS; the catalog mirror."""

from __future__ import annotations

import pytest

from consumers.credentials import handlers
from consumers.credentials.models import (
    CatalogCourse,
    CatalogCourseRun,
    CatalogProgram,
    Certificate,
    ProgramCourse,
    ProgramIntent,
    UserGrade,
)
from consumers.credentials.summary import summary
from demo.scenario import (
    ADA,
    DS_COURSE,
    DS_COURSE_UUID,
    PROGRAM_UUID,
    PY_COURSE,
    PY_COURSE_UUID,
    PY_NEXT_RUN,
    PY_RUN,
    catalog_course,
    catalog_run,
    certificate,
    grade,
    intent,
    passing,
    program,
)
from event_tasks.testing import make_event
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

from .projection_helpers import at

pytestmark = pytest.mark.django_db


def cert_event(event_type: str, seconds: float, *, status: str = "downloadable", grade_: str = "0.92"):
    return make_event(event_type, certificate(ADA, PY_RUN, grade_=grade_, status=status), key=PY_RUN, time=at(seconds))


# --- certificates -------------------------------------------------------------------------------
def test_certificate_awarded_changed_and_revoked():
    handlers.record_certificate(cert_event(CERTIFICATE_CREATED, 1))
    cert = Certificate.objects.get()
    assert (cert.username, cert.course_run_key, cert.mode, cert.status, cert.grade) == (
        "ada",
        PY_RUN,
        "verified",
        Certificate.Status.AWARDED,
        "0.92",
    )

    handlers.record_certificate(cert_event(CERTIFICATE_CHANGED, 2, grade_="0.95"))
    cert.refresh_from_db()
    assert cert.grade == "0.95" and cert.status == Certificate.Status.AWARDED

    handlers.record_certificate(cert_event(CERTIFICATE_REVOKED, 3, status="unavailable"))
    cert.refresh_from_db()
    assert cert.status == Certificate.Status.REVOKED and cert.lms_status == "unavailable"


def test_a_certificate_that_is_not_downloadable_is_not_awarded():
    handlers.record_certificate(cert_event(CERTIFICATE_CHANGED, 1, status="notpassing"))
    assert Certificate.objects.get().status == Certificate.Status.REVOKED


def test_a_late_award_does_not_undo_a_revocation():
    handlers.record_certificate(cert_event(CERTIFICATE_REVOKED, 5, status="unavailable"))
    handlers.record_certificate(cert_event(CERTIFICATE_CREATED, 1))
    cert = Certificate.objects.get()
    assert cert.status == Certificate.Status.REVOKED and cert.last_event_time == at(5)


def test_a_repeated_certificate_event_is_harmless():
    event = cert_event(CERTIFICATE_CREATED, 1)
    handlers.record_certificate(event)
    handlers.record_certificate(event)
    assert Certificate.objects.count() == 1 and Certificate.objects.get().status == "awarded"


# --- grades and passing status -------------------------------------------------------------------
def grade_event(seconds: float, percent: float, letter: str = "A"):
    passed = "2025-12-10T12:00:00Z" if percent >= 0.6 else None
    return make_event(PERSISTENT_GRADE_SUMMARY_CHANGED, grade(ADA, PY_RUN, percent, letter, passed), time=at(seconds))


def passing_event(seconds: float, is_passing: bool):
    return make_event(COURSE_PASSING_STATUS_UPDATED, passing(ADA, PY_RUN, is_passing), time=at(seconds))


def test_grade_and_passing_status_fill_one_row():
    handlers.record_grade(grade_event(1, 0.92))
    handlers.record_passing_status(passing_event(2, True))
    row = UserGrade.objects.get()
    assert (row.percent_grade, row.letter_grade, row.is_passing) == (0.92, "A", True)
    assert row.passed_timestamp is not None
    assert (row.grade_event_time, row.passing_event_time) == (at(1), at(2))


def test_grade_and_passing_status_keep_separate_times():
    # A newer passing status must not make an older (but unseen) grade look stale.
    handlers.record_passing_status(passing_event(10, False))
    handlers.record_grade(grade_event(5, 0.55, ""))
    row = UserGrade.objects.get()
    assert (row.percent_grade, row.is_passing, row.passed_timestamp) == (0.55, False, None)


def test_an_older_grade_or_passing_status_is_ignored():
    handlers.record_grade(grade_event(10, 0.55, ""))
    handlers.record_passing_status(passing_event(10, False))
    handlers.record_grade(grade_event(1, 0.92))
    handlers.record_passing_status(passing_event(1, True))
    row = UserGrade.objects.get()
    assert (row.percent_grade, row.is_passing) == (0.55, False)


def test_a_repeated_grade_event_is_harmless():
    event = grade_event(1, 0.92)
    handlers.record_grade(event)
    handlers.record_grade(event)
    assert UserGrade.objects.count() == 1 and UserGrade.objects.get().percent_grade == 0.92


# --- program intent -----------------------------------------------------------------------------
def test_program_intent_keeps_the_latest_statement():
    handlers.record_program_intent(make_event(PROGRAM_INTENT_CHANGED, intent(ADA, "considering"), time=at(1)))
    handlers.record_program_intent(make_event(PROGRAM_INTENT_CHANGED, intent(ADA, "intends_to_pursue"), time=at(3)))
    handlers.record_program_intent(make_event(PROGRAM_INTENT_CHANGED, intent(ADA, "not_pursuing"), time=at(2)))
    row = ProgramIntent.objects.get()
    assert (row.username, str(row.program_uuid), row.intent) == ("ada", PROGRAM_UUID, "intends_to_pursue")


# --- the catalog mirror -------------------------------------------------------------------------
def course_event(event_type: str, seconds: float, runs: list[str]):
    data = catalog_course(
        PY_COURSE_UUID, PY_COURSE, "Python for Everyone", [catalog_run(key, "published") for key in runs]
    )
    return make_event(event_type, data, key=PY_COURSE, time=at(seconds))


def program_event(event_type: str, seconds: float, courses: list[tuple[str, str]], status: str = "active"):
    return make_event(event_type, program(status, courses), key=PROGRAM_UUID, time=at(seconds))


def test_a_course_and_its_runs_are_mirrored_and_runs_replaced():
    handlers.mirror_course(course_event(CATALOG_COURSE_CREATED, 1, [PY_RUN]))
    handlers.mirror_course(course_event(CATALOG_COURSE_UPDATED, 2, [PY_NEXT_RUN]))
    course = CatalogCourse.objects.get()
    assert (course.key, course.title, str(course.uuid)) == (PY_COURSE, "Python for Everyone", PY_COURSE_UUID)
    assert list(CatalogCourseRun.objects.values_list("key", flat=True)) == [PY_NEXT_RUN]


def test_an_older_course_event_does_not_bring_back_its_runs():
    handlers.mirror_course(course_event(CATALOG_COURSE_UPDATED, 5, [PY_RUN, PY_NEXT_RUN]))
    handlers.mirror_course(course_event(CATALOG_COURSE_CREATED, 1, [PY_RUN]))
    assert set(CatalogCourseRun.objects.values_list("key", flat=True)) == {PY_RUN, PY_NEXT_RUN}
    assert CatalogCourse.objects.get().last_event_time == at(5)


def test_program_membership_is_replaced_by_newer_events_only():
    py, ds = (PY_COURSE_UUID, PY_COURSE), (DS_COURSE_UUID, DS_COURSE)
    handlers.mirror_program(program_event(CATALOG_PROGRAM_CREATED, 1, [py], status="unpublished"))
    handlers.mirror_program(program_event(CATALOG_PROGRAM_UPDATED, 3, [py, ds]))
    handlers.mirror_program(program_event(CATALOG_PROGRAM_UPDATED, 2, [ds], status="retired"))  # older
    prog = CatalogProgram.objects.get()
    assert (prog.title, prog.program_type, prog.status) == ("Applied Data Skills", "Professional Certificate", "active")
    assert set(ProgramCourse.objects.values_list("course_key", flat=True)) == {PY_COURSE, DS_COURSE}


def test_repeated_catalog_events_are_harmless():
    course = course_event(CATALOG_COURSE_CREATED, 1, [PY_RUN])
    prog = program_event(CATALOG_PROGRAM_CREATED, 1, [(PY_COURSE_UUID, PY_COURSE)])
    for _ in range(2):
        handlers.mirror_course(course)
        handlers.mirror_program(prog)
    assert (CatalogCourse.objects.count(), CatalogCourseRun.objects.count()) == (1, 1)
    assert (CatalogProgram.objects.count(), ProgramCourse.objects.count()) == (1, 1)


def test_summary_reports_counts_and_rows():
    handlers.record_certificate(cert_event(CERTIFICATE_CREATED, 1))
    handlers.mirror_program(program_event(CATALOG_PROGRAM_CREATED, 1, [(PY_COURSE_UUID, PY_COURSE)]))
    result = summary()
    assert result["counts"]["certificates"] == 1 and result["counts"]["awarded_certificates"] == 1
    assert result["counts"]["program_courses"] == 1
    assert any(row.startswith("program: Applied Data Skills") for row in result["rows"])
