"""Discovery's handlers: course runs from Studio, enrollment counts from the LMS (a pattern)."""

from __future__ import annotations

import pytest

from consumers.discovery import handlers
from consumers.discovery.models import CourseRun, CourseRunEnrollment
from consumers.discovery.summary import summary
from demo.scenario import ADA, DS_RUN, PY_RUN, enrollment, studio_catalog_info
from event_tasks.testing import make_event
from schemas.content_authoring import COURSE_CATALOG_INFO_CHANGED, COURSE_CREATED
from schemas.learning import COURSE_ENROLLMENT_CHANGED, COURSE_ENROLLMENT_CREATED

from .projection_helpers import at, deliver

pytestmark = pytest.mark.django_db


def created(key: str, seconds: float):
    return make_event(COURSE_CREATED, {"course": {"course_key": key}}, key=key, time=at(seconds))


def info(key: str, seconds: float, **kwargs):
    kwargs.setdefault("end", "2025-12-15T00:00:00Z")
    kwargs.setdefault("status", "published")
    return make_event(COURSE_CATALOG_INFO_CHANGED, studio_catalog_info(key, **kwargs), key=key, time=at(seconds))


def test_a_created_run_appears_then_gets_its_catalog_info():
    handlers.create_course_run(created(PY_RUN, 0))
    run = CourseRun.objects.get(key=PY_RUN)
    assert (run.course_key, run.run, run.title, run.status) == ("DemoX+PY101", "2025_T1", "", "unpublished")

    handlers.update_course_run(info(PY_RUN, 1, pacing="self"))
    run.refresh_from_db()
    assert run.title == "Python for Everyone"
    assert run.pacing_type == CourseRun.Pacing.SELF_PACED
    assert run.status == CourseRun.Status.PUBLISHED
    assert run.start.isoformat() == "2025-09-01T00:00:00+00:00"
    assert run.end.isoformat() == "2025-12-15T00:00:00+00:00"
    assert run.last_event_time == at(1)


def test_a_late_created_event_does_not_erase_the_catalog_info():
    handlers.update_course_run(info(PY_RUN, 5))
    handlers.create_course_run(created(PY_RUN, 0))
    run = CourseRun.objects.get(key=PY_RUN)
    assert run.title == "Python for Everyone" and run.last_event_time == at(5)


def test_an_older_catalog_info_does_not_overwrite_a_newer_one():
    handlers.update_course_run(info(PY_RUN, 10, end="2026-01-31T00:00:00Z", status="published"))
    handlers.update_course_run(info(PY_RUN, 3, end="2025-12-01T00:00:00Z", status="unpublished"))
    run = CourseRun.objects.get(key=PY_RUN)
    assert run.end.date().isoformat() == "2026-01-31" and run.status == "published"
    assert run.last_event_time == at(10)


def test_a_repeated_event_is_harmless():
    event = info(DS_RUN, 1)
    handlers.update_course_run(event)
    handlers.update_course_run(event)
    handlers.create_course_run(created(DS_RUN, 0))
    handlers.create_course_run(created(DS_RUN, 0))
    assert CourseRun.objects.count() == 1
    assert CourseRun.objects.get().title == "Data Science Foundations"


def test_enrollments_reach_discovery_through_its_pattern_subscription():
    deliver("discovery", COURSE_ENROLLMENT_CREATED, enrollment(ADA, PY_RUN, "audit"), time=at(1))
    deliver("discovery", COURSE_ENROLLMENT_CHANGED, enrollment(ADA, PY_RUN, "verified"), time=at(2))
    row = CourseRunEnrollment.objects.get()
    assert (row.course_run_key, row.user_id, row.mode, row.is_active) == (PY_RUN, ADA, "verified", True)


def test_an_older_enrollment_event_does_not_undo_an_unenrollment():
    deliver("discovery", COURSE_ENROLLMENT_CHANGED, enrollment(ADA, PY_RUN, "audit", active=False), time=at(9))
    deliver("discovery", COURSE_ENROLLMENT_CREATED, enrollment(ADA, PY_RUN, "audit"), time=at(1))
    assert CourseRunEnrollment.objects.get().is_active is False


def test_a_repeated_enrollment_event_counts_once():
    event = make_event(COURSE_ENROLLMENT_CREATED, enrollment(ADA, PY_RUN, "audit"), time=at(1))
    handlers.record_enrollment(event)
    handlers.record_enrollment(event)
    assert CourseRunEnrollment.objects.count() == 1


def test_summary_counts_runs_and_active_enrollments():
    handlers.update_course_run(info(PY_RUN, 1))
    handlers.record_enrollment(make_event(COURSE_ENROLLMENT_CREATED, enrollment(ADA, PY_RUN, "audit"), time=at(1)))
    result = summary()
    assert result["counts"] == {"course_runs": 1, "enrollments": 1, "active_enrollments": 1}
    assert result["rows"][0].endswith("active enrollments: 1")
