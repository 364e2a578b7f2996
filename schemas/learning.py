"""Learning events: enrollments, certificates, grades and program intent, from the LMS.

Producer: **lms**.
Consumers:

* enrollments: **ecommerce** (use case 4) and **discovery**, which subscribes with the pattern
  ``org.openedx.learning.course.enrollment.#`` (use case 9: a later consumer, no LMS change);
* certificates, persistent grades and passing status: **credentials** (use case 3);
* program intent: **credentials** (use case 7).

Names and payloads follow openedx-events (``COURSE_ENROLLMENT_CREATED``, ``CERTIFICATE_CREATED``,
``PERSISTENT_GRADE_SUMMARY_CHANGED``, ``COURSE_PASSING_STATUS_UPDATED`` …). Program intent has no
openedx-events counterpart; its name follows the same style. The exam attempt events are in
``schemas/exams.py`` (their producer is the exams service).
"""

from __future__ import annotations

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type

from .common import CourseDataSchema, NonEmpty, ProgramDataSchema, UserDataSchema, UTCDateTime

#: Certificate states as the LMS names them (``current_status`` / ``previous_status``).
CERTIFICATE_STATUSES = (
    "deleted",
    "deleting",
    "downloadable",
    "error",
    "generating",
    "notpassing",
    "restricted",
    "unavailable",
    "auditing",
    "audit_passing",
    "audit_notpassing",
    "honor_passing",
    "unverified",
    "invalidated",
    "requesting",
)
#: What a learner said about a program.
PROGRAM_INTENTS = ("intends_to_pursue", "considering", "not_pursuing")


# --- enrollments ------------------------------------------------------------------------------
class CourseEnrollmentSchema(EventSchema):
    """A learner's enrollment in a course run (openedx-events ``CourseEnrollmentData``)."""

    user = fields.Nested(UserDataSchema, required=True)
    course = fields.Nested(CourseDataSchema, required=True)
    mode = NonEmpty(required=True)  # audit, verified, professional, … (configurable per run)
    is_active = fields.Boolean(required=True)
    creation_date = UTCDateTime(required=True)
    created_by = fields.Nested(UserDataSchema, load_default=None)


class CourseEnrollmentEventSchema(EventSchema):
    enrollment = fields.Nested(CourseEnrollmentSchema, required=True)


COURSE_ENROLLMENT_CREATED = event_type(
    "org.openedx.learning.course.enrollment.created.v1",
    schema=CourseEnrollmentEventSchema,
    owner="lms",
    description="A learner enrolled in a course run.",
)

COURSE_ENROLLMENT_CHANGED = event_type(
    "org.openedx.learning.course.enrollment.changed.v1",
    schema=CourseEnrollmentEventSchema,
    owner="lms",
    description="An enrollment's mode or active flag changed (an unenrollment sends is_active false).",
)

COURSE_UNENROLLMENT_COMPLETED = event_type(
    "org.openedx.learning.course.unenrollment.completed.v1",
    schema=CourseEnrollmentEventSchema,
    owner="lms",
    description="A learner finished unenrolling from a course run.",
)


# --- course certificates ----------------------------------------------------------------------
class CertificateSchema(EventSchema):
    """A learner's course certificate (openedx-events ``CertificateData``)."""

    user = fields.Nested(UserDataSchema, required=True)
    course = fields.Nested(CourseDataSchema, required=True)
    mode = NonEmpty(required=True)
    grade = fields.String(required=True)
    current_status = fields.String(required=True, validate=validate.OneOf(CERTIFICATE_STATUSES))
    previous_status = fields.String(load_default="", validate=validate.OneOf(("",) + CERTIFICATE_STATUSES))
    download_url = fields.String(required=True)
    name = fields.String(required=True)


class CertificateEventSchema(EventSchema):
    certificate = fields.Nested(CertificateSchema, required=True)


CERTIFICATE_CREATED = event_type(
    "org.openedx.learning.certificate.created.v1",
    schema=CertificateEventSchema,
    owner="lms",
    description="A course certificate was awarded to a learner.",
)

CERTIFICATE_CHANGED = event_type(
    "org.openedx.learning.certificate.changed.v1",
    schema=CertificateEventSchema,
    owner="lms",
    description="A course certificate changed (mode, grade, name or status).",
)

CERTIFICATE_REVOKED = event_type(
    "org.openedx.learning.certificate.revoked.v1",
    schema=CertificateEventSchema,
    owner="lms",
    description="A course certificate was revoked (invalidated or no longer passing).",
)


# --- grades and passing status ----------------------------------------------------------------
class PersistentCourseGradeSchema(EventSchema):
    """A learner's stored course grade (openedx-events ``PersistentCourseGradeData``)."""

    user_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    course = fields.Nested(CourseDataSchema, required=True)
    course_edited_timestamp = UTCDateTime(required=True)
    course_version = fields.String(required=True)
    grading_policy_hash = fields.String(required=True)
    percent_grade = fields.Float(required=True, validate=validate.Range(min=0, max=1))
    letter_grade = fields.String(required=True)
    passed_timestamp = UTCDateTime(required=True, allow_none=True)  # null until the learner passes


class PersistentGradeSummaryChangedSchema(EventSchema):
    grade = fields.Nested(PersistentCourseGradeSchema, required=True)


class CoursePassingStatusSchema(EventSchema):
    """Whether a learner now passes a course run (openedx-events ``CoursePassingStatusData``)."""

    is_passing = fields.Boolean(required=True)
    course = fields.Nested(CourseDataSchema, required=True)
    user = fields.Nested(UserDataSchema, required=True)


class CoursePassingStatusUpdatedSchema(EventSchema):
    course_passing_status = fields.Nested(CoursePassingStatusSchema, required=True)


PERSISTENT_GRADE_SUMMARY_CHANGED = event_type(
    "org.openedx.learning.course.persistent_grade_summary.changed.v1",
    schema=PersistentGradeSummaryChangedSchema,
    owner="lms",
    description="A learner's stored course grade (percent, letter, passed time) changed.",
)

COURSE_PASSING_STATUS_UPDATED = event_type(
    "org.openedx.learning.course.passing.status.updated.v1",
    schema=CoursePassingStatusUpdatedSchema,
    owner="lms",
    description="A learner started or stopped passing a course run.",
)


# --- program intent ---------------------------------------------------------------------------
class ProgramIntentSchema(EventSchema):
    """What a learner said they intend to do about a program."""

    user = fields.Nested(UserDataSchema, required=True)
    program = fields.Nested(ProgramDataSchema, required=True)
    intent = fields.String(required=True, validate=validate.OneOf(PROGRAM_INTENTS))


class ProgramIntentChangedSchema(EventSchema):
    program_intent = fields.Nested(ProgramIntentSchema, required=True)


PROGRAM_INTENT_CHANGED = event_type(
    "org.openedx.learning.program.intent.changed.v1",
    schema=ProgramIntentChangedSchema,
    owner="lms",
    description="A learner stated or changed their intent to pursue a program.",
)
