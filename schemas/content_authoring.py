"""Content authoring events: course runs as Studio (the CMS) creates and edits them.

Producer: **studio**.
Consumers: **discovery** (its ``CourseRun`` table; use case 1, replacing the scheduled
"refresh course metadata" job).

Names and payloads follow openedx-events (``COURSE_CREATED``, ``COURSE_CATALOG_INFO_CHANGED``).
One addition: ``catalog_info.status`` (Studio's publication state of the run), which the use case
needs and openedx-events' ``CourseCatalogData`` does not carry. The run part of the key is not
sent separately: it is the last part of ``course_key``.
"""

from __future__ import annotations

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type

from .common import CourseKey, NonEmpty, UTCDateTime

#: Pacing as Studio names it (discovery calls these ``instructor_paced`` / ``self_paced``).
PACING = ("instructor", "self")
#: Studio's publication state of a course run.
RUN_STATUSES = ("unpublished", "published", "archived")


class StudioCourseSchema(EventSchema):
    """A course run just created in Studio (openedx-events content_authoring ``CourseData``)."""

    course_key = CourseKey(required=True)


class CourseCreatedSchema(EventSchema):
    course = fields.Nested(StudioCourseSchema, required=True)


class CourseScheduleSchema(EventSchema):
    """When a run happens (openedx-events ``CourseScheduleData``)."""

    start = UTCDateTime(required=True)
    pacing = fields.String(required=True, validate=validate.OneOf(PACING))
    end = UTCDateTime(load_default=None)
    enrollment_start = UTCDateTime(load_default=None)
    enrollment_end = UTCDateTime(load_default=None)


class CourseCatalogInfoSchema(EventSchema):
    """What discovery needs to list a run (openedx-events ``CourseCatalogData`` + ``status``)."""

    course_key = CourseKey(required=True)
    name = NonEmpty(required=True)
    schedule_data = fields.Nested(CourseScheduleSchema, required=True)
    hidden = fields.Boolean(load_default=False)
    invitation_only = fields.Boolean(load_default=False)
    status = fields.String(required=True, validate=validate.OneOf(RUN_STATUSES))


class CourseCatalogInfoChangedSchema(EventSchema):
    catalog_info = fields.Nested(CourseCatalogInfoSchema, required=True)


COURSE_CREATED = event_type(
    "org.openedx.content_authoring.course.created.v1",
    schema=CourseCreatedSchema,
    owner="studio",
    description="A course run was created in Studio (its key only; details follow in catalog_info.changed).",
)

COURSE_CATALOG_INFO_CHANGED = event_type(
    "org.openedx.content_authoring.course.catalog_info.changed.v1",
    schema=CourseCatalogInfoChangedSchema,
    owner="studio",
    description="A course run's catalog data (title, schedule, pacing, visibility, status) was saved in Studio.",
)
