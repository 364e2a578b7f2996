"""Catalog events: course and program metadata, and Publisher's course runs, from course discovery.

Producer: **discovery** (the catalog, and its Publisher app where course teams edit and publish runs).
Consumers:

* **credentials** mirrors courses, their runs, programs and program membership (use case 2:
  ``catalog.course.*``, ``catalog.program.*``);
* **lms**, **studio** and **enterprise_catalog** take Publisher's published runs (use case 8:
  ``catalog.course_run.published``).

openedx-events defines no discovery events; these names follow its style. Course and program
events carry the whole current record (including a program's full course list), so a consumer
replaces what it holds instead of applying a diff.
"""

from __future__ import annotations

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type

from .common import CatalogCourseKey, CourseKey, Currency, NonEmpty, Price, UTCDateTime

#: Pacing as discovery names it.
PACING_TYPES = ("instructor_paced", "self_paced")
#: Discovery's review/publication state of a course run.
COURSE_RUN_STATUSES = ("unpublished", "review_by_legal", "review_by_internal", "reviewed", "published")
#: Discovery's state of a program.
PROGRAM_STATUSES = ("unpublished", "active", "retired", "deleted")


class CatalogCourseRunSchema(EventSchema):
    """One run of a catalog course, as listed under the course."""

    key = CourseKey(required=True)
    start = UTCDateTime(required=True)
    end = UTCDateTime(load_default=None)
    pacing_type = fields.String(required=True, validate=validate.OneOf(PACING_TYPES))
    status = fields.String(required=True, validate=validate.OneOf(COURSE_RUN_STATUSES))


class CatalogCourseSchema(EventSchema):
    """A course in the catalog (all its runs together)."""

    uuid = fields.UUID(required=True)
    key = CatalogCourseKey(required=True)
    title = NonEmpty(required=True)
    short_description = fields.String(load_default="")
    course_runs = fields.List(fields.Nested(CatalogCourseRunSchema), load_default=list)


class CatalogCourseChangedSchema(EventSchema):
    course = fields.Nested(CatalogCourseSchema, required=True)


class ProgramCourseSchema(EventSchema):
    """A course that belongs to a program."""

    uuid = fields.UUID(required=True)
    key = CatalogCourseKey(required=True)


class CatalogProgramSchema(EventSchema):
    """A program and its full membership (``ProgramData`` fields, plus status and courses)."""

    uuid = fields.UUID(required=True)
    title = NonEmpty(required=True)
    program_type = NonEmpty(required=True)
    status = fields.String(required=True, validate=validate.OneOf(PROGRAM_STATUSES))
    marketing_slug = fields.String(load_default="")
    courses = fields.List(fields.Nested(ProgramCourseSchema), required=True)


class CatalogProgramChangedSchema(EventSchema):
    program = fields.Nested(CatalogProgramSchema, required=True)


class SeatSchema(EventSchema):
    """A purchasable (or free) enrollment mode of a run."""

    type = NonEmpty(required=True)  # the LMS enrollment mode: audit, verified, professional, …
    price = Price(required=True)
    currency = Currency(required=True)
    upgrade_deadline = UTCDateTime(load_default=None)


class PublishedCourseRunSchema(EventSchema):
    """A course run as Publisher published it: what learners, Studio and enterprise see."""

    key = CourseKey(required=True)
    uuid = fields.UUID(required=True)
    course_key = CatalogCourseKey(required=True)
    title = NonEmpty(required=True)
    start = UTCDateTime(required=True)
    end = UTCDateTime(load_default=None)
    enrollment_start = UTCDateTime(load_default=None)
    enrollment_end = UTCDateTime(load_default=None)
    pacing_type = fields.String(required=True, validate=validate.OneOf(PACING_TYPES))
    marketing_url = fields.Url(load_default=None)
    seats = fields.List(fields.Nested(SeatSchema), required=True)


class CourseRunPublishedSchema(EventSchema):
    course_run = fields.Nested(PublishedCourseRunSchema, required=True)


CATALOG_COURSE_CREATED = event_type(
    "org.openedx.catalog.course.created.v1",
    schema=CatalogCourseChangedSchema,
    owner="discovery",
    description="A course was added to the catalog (with its runs).",
)

CATALOG_COURSE_UPDATED = event_type(
    "org.openedx.catalog.course.updated.v1",
    schema=CatalogCourseChangedSchema,
    owner="discovery",
    description="A catalog course or its list of runs changed (the whole current course).",
)

CATALOG_PROGRAM_CREATED = event_type(
    "org.openedx.catalog.program.created.v1",
    schema=CatalogProgramChangedSchema,
    owner="discovery",
    description="A program was added to the catalog (with the courses it contains).",
)

CATALOG_PROGRAM_UPDATED = event_type(
    "org.openedx.catalog.program.updated.v1",
    schema=CatalogProgramChangedSchema,
    owner="discovery",
    description="A program's metadata or membership changed (the whole current program and course list).",
)

COURSE_RUN_PUBLISHED = event_type(
    "org.openedx.catalog.course_run.published.v1",
    schema=CourseRunPublishedSchema,
    owner="discovery",
    description="Publisher published a course run, or republished it after an edit (the run as now live).",
)
