"""Exam attempt events: the exams (proctoring) service reports submissions and review outcomes.

Producer: **exams**.
Consumers: **lms**, which turns each outcome into its own grade, credit-eligibility, completion
and certificate state (use case 6).

Names and payloads follow openedx-events (``EXAM_ATTEMPT_SUBMITTED``, ``…_VERIFIED``,
``…_REJECTED``, ``…_ERRORED``, ``…_RESET``; domain ``learning``) so the exams service can
keep emitting what Open edX already defines.
"""

from __future__ import annotations

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type

from .common import CourseKey, UsageKey, UserDataSchema

EXAM_TYPES = ("proctored", "timed", "practice", "onboarding")


class ExamAttemptSchema(EventSchema):
    """One learner's attempt at one exam (openedx-events ``ExamAttemptData``)."""

    student_user = fields.Nested(UserDataSchema, required=True)
    course_key = CourseKey(required=True)
    usage_key = UsageKey(required=True)
    exam_type = fields.String(required=True, validate=validate.OneOf(EXAM_TYPES))
    requesting_user = fields.Nested(UserDataSchema, load_default=None)


class ExamAttemptEventSchema(EventSchema):
    exam_attempt = fields.Nested(ExamAttemptSchema, required=True)


EXAM_ATTEMPT_SUBMITTED = event_type(
    "org.openedx.learning.exam.attempt.submitted.v1",
    schema=ExamAttemptEventSchema,
    owner="exams",
    description="A learner submitted an exam attempt (review may follow).",
)

EXAM_ATTEMPT_VERIFIED = event_type(
    "org.openedx.learning.exam.attempt.verified.v1",
    schema=ExamAttemptEventSchema,
    owner="exams",
    description="An exam attempt passed proctoring review.",
)

EXAM_ATTEMPT_REJECTED = event_type(
    "org.openedx.learning.exam.attempt.rejected.v1",
    schema=ExamAttemptEventSchema,
    owner="exams",
    description="An exam attempt failed proctoring review.",
)

EXAM_ATTEMPT_ERRORED = event_type(
    "org.openedx.learning.exam.attempt.errored.v1",
    schema=ExamAttemptEventSchema,
    owner="exams",
    description="An exam attempt ended in a technical error; it can be retaken.",
)

EXAM_ATTEMPT_RESET = event_type(
    "org.openedx.learning.exam.attempt.reset.v1",
    schema=ExamAttemptEventSchema,
    owner="exams",
    description="Staff reset an exam attempt; the learner starts over.",
)
