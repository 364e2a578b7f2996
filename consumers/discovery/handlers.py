"""Course discovery's event handlers: queue ``events.discovery``, discovery database.

Consumes:

* ``org.openedx.content_authoring.course.created.v1`` (studio): a new run appears at once;
* ``org.openedx.content_authoring.course.catalog_info.changed.v1`` (studio): the run's title,
  schedule, pacing, visibility and status (use case 1);
* ``org.openedx.learning.course.enrollment.#`` (lms): a topic pattern, so every enrollment event
  type, today ``…created.v1`` and ``…changed.v1``, and any the LMS adds later, is counted
  (use case 9: discovery subscribed after the fact; the LMS did not change).
"""

from __future__ import annotations

import logging

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.content_authoring import COURSE_CATALOG_INFO_CHANGED, COURSE_CREATED

from .models import CourseRun, CourseRunEnrollment

log = logging.getLogger(__name__)

#: Studio's pacing names → discovery's.
PACING_TYPE = {"instructor": CourseRun.Pacing.INSTRUCTOR_PACED, "self": CourseRun.Pacing.SELF_PACED}
ENROLLMENT_EVENTS = "org.openedx.learning.course.enrollment.#"


def split_course_key(key: str) -> tuple[str, str]:
    """``course-v1:Org+Course+Run`` → (``Org+Course``, ``Run``); the schema checked the form."""
    org, number, run = key.split(":", 1)[1].split("+")
    return f"{org}+{number}", run


@consumer(COURSE_CREATED)
def create_course_run(event: Event) -> None:
    """List the new run; its details come with ``catalog_info.changed`` (before or after this)."""
    key = event.data["course"]["course_key"]
    course_key, run = split_course_key(key)
    # Only creates: if catalog_info.changed got here first, the row already holds more.
    CourseRun.objects.get_or_create(
        key=key, defaults={"course_key": course_key, "run": run, "last_event_time": event.time}
    )


@consumer(COURSE_CATALOG_INFO_CHANGED)
def update_course_run(event: Event) -> None:
    """Keep the run as Studio last described it."""
    info = event.data["catalog_info"]
    schedule = info["schedule_data"]
    course_key, run = split_course_key(info["course_key"])
    apply_latest(
        CourseRun,
        event,
        lookup={"key": info["course_key"]},
        values={
            "course_key": course_key,
            "run": run,
            "title": info["name"],
            "start": schedule["start"],
            "end": schedule["end"],
            "enrollment_start": schedule["enrollment_start"],
            "enrollment_end": schedule["enrollment_end"],
            "pacing_type": PACING_TYPE[schedule["pacing"]],
            "status": info["status"],
            "hidden": info["hidden"],
            "invitation_only": info["invitation_only"],
        },
    )


@consumer(ENROLLMENT_EVENTS)
def record_enrollment(event: Event) -> None:
    """Keep each learner's latest enrollment state per run (counted in the catalog)."""
    enrollment = event.data.get("enrollment")
    if enrollment is None:  # a future type under the pattern with another payload shape
        log.info("%s %s: no 'enrollment' in the payload; nothing to count", event.type, event.id)
        return
    apply_latest(
        CourseRunEnrollment,
        event,
        lookup={
            "course_run_key": enrollment["course"]["course_key"],
            "user_id": enrollment["user"]["id"],
        },
        values={"mode": enrollment["mode"], "is_active": enrollment["is_active"]},
    )
