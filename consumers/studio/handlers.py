"""Studio's event handlers: queue ``events.studio``, Studio database.

Consumes, from discovery's Publisher (use case 8):

* ``org.openedx.catalog.course_run.published.v1``: the schedule and pacing Publisher published.
"""

from __future__ import annotations

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.catalog import COURSE_RUN_PUBLISHED

from .models import PublishedSchedule

#: Discovery's pacing names → Studio's.
PACING = {"instructor_paced": PublishedSchedule.Pacing.INSTRUCTOR, "self_paced": PublishedSchedule.Pacing.SELF}


@consumer(COURSE_RUN_PUBLISHED)
def record_published_schedule(event: Event) -> None:
    """Keep the latest published schedule of each run."""
    run = event.data["course_run"]
    apply_latest(
        PublishedSchedule,
        event,
        lookup={"course_run_key": run["key"]},
        values={
            "title": run["title"],
            "start": run["start"],
            "end": run["end"],
            "enrollment_start": run["enrollment_start"],
            "enrollment_end": run["enrollment_end"],
            "pacing": PACING[run["pacing_type"]],
        },
    )
