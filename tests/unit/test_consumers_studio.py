"""Studio's handler: the schedules Publisher publishes."""

from __future__ import annotations

import pytest

from consumers.studio import handlers
from consumers.studio.models import PublishedSchedule
from consumers.studio.summary import summary
from demo.scenario import DS_COURSE, DS_RUN, DS_RUN_UUID, published_run
from event_tasks.testing import make_event
from schemas.catalog import COURSE_RUN_PUBLISHED

from .projection_helpers import at

pytestmark = pytest.mark.django_db


def published_event(seconds: float, enrollment_end: str, pacing_type: str = "instructor_paced"):
    data = published_run(DS_RUN, DS_RUN_UUID, DS_COURSE, verified_price="99.00", enrollment_end=enrollment_end)
    data["course_run"]["pacing_type"] = pacing_type
    return make_event(COURSE_RUN_PUBLISHED, data, key=DS_RUN, time=at(seconds), source="discovery")


def test_a_published_schedule_is_kept_in_studio_terms():
    handlers.record_published_schedule(published_event(1, "2025-09-15T00:00:00Z", "self_paced"))
    row = PublishedSchedule.objects.get()
    assert (row.course_run_key, row.title, row.pacing) == (DS_RUN, "Data Science Foundations", "self")
    assert row.enrollment_end.date().isoformat() == "2025-09-15"


def test_an_older_publish_is_ignored_and_a_repeat_is_harmless():
    newer = published_event(3, "2025-10-01T00:00:00Z")
    handlers.record_published_schedule(newer)
    handlers.record_published_schedule(published_event(1, "2025-09-15T00:00:00Z", "self_paced"))
    handlers.record_published_schedule(newer)
    row = PublishedSchedule.objects.get()
    assert (row.pacing, row.enrollment_end.date().isoformat(), row.last_event_time) == (
        "instructor",
        "2025-10-01",
        at(3),
    )


def test_summary_reports_counts_and_rows():
    handlers.record_published_schedule(published_event(1, "2025-09-15T00:00:00Z"))
    result = summary()
    assert result["counts"] == {"published_schedules": 1}
    assert result["rows"] == [f"schedule: {DS_RUN} 'Data Science Foundations' instructor-paced 2025-09-01..2025-12-15"]
