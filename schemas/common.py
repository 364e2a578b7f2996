"""Building blocks shared by the domain modules of the catalog: fields and nested schemas.

No event types are declared here. The nested schemas follow the data classes of openedx-events
(``UserData``, ``UserPersonalData``, ``CourseData``, ``ProgramData``) so a payload reads the
same as the Open edX signal it mirrors. Every nested schema subclasses ``EventSchema``, so
unknown fields are rejected at every level, not only at the top.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import ValidationError, fields, validate

from event_tasks.catalog import EventSchema

__all__ = [
    "CATALOG_COURSE_KEY",
    "COURSE_KEY",
    "USAGE_KEY",
    "CatalogCourseKey",
    "CourseDataSchema",
    "CourseKey",
    "Currency",
    "NonEmpty",
    "Price",
    "ProgramDataSchema",
    "UTCDateTime",
    "UsageKey",
    "UserDataSchema",
    "UserPersonalDataSchema",
]

_PART = r"[A-Za-z0-9_.~-]+"
#: A course run key: ``course-v1:Org+Course+Run``.
COURSE_KEY = rf"^course-v1:{_PART}\+{_PART}\+{_PART}$"
#: A catalog (discovery) course key, the run-less part: ``Org+Course``.
CATALOG_COURSE_KEY = rf"^{_PART}\+{_PART}$"
#: A block usage key inside a course run: ``block-v1:Org+Course+Run+type@sequential+block@id``.
USAGE_KEY = rf"^block-v1:{_PART}\+{_PART}\+{_PART}\+type@[a-z_]+\+block@[A-Za-z0-9_.~-]+$"


class UTCDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time with a timezone; loaded as an aware ``datetime`` in UTC.

    A naive value is refused (it is ambiguous across services); the wire form always ends in
    ``+00:00``.
    """

    # Its _deserialize and _serialize read only the value: event_tasks' compiled codecs may call
    # them directly (docs/decisions/0012-compiled-codecs.md).
    codec_direct = True

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        loaded = super()._deserialize(value, attr, data, **kwargs)
        return loaded.astimezone(dt.UTC)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise ValidationError("Not a valid aware datetime.")
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def CourseKey(**kwargs: Any) -> fields.String:
    """A course run key (``course-v1:Org+Course+Run``)."""
    return fields.String(
        validate=validate.Regexp(COURSE_KEY, error="Not a course run key (course-v1:Org+Course+Run)."), **kwargs
    )


def CatalogCourseKey(**kwargs: Any) -> fields.String:
    """A catalog course key (``Org+Course``): the course, all runs together."""
    return fields.String(
        validate=validate.Regexp(CATALOG_COURSE_KEY, error="Not a catalog course key (Org+Course)."), **kwargs
    )


def UsageKey(**kwargs: Any) -> fields.String:
    """A block usage key (``block-v1:Org+Course+Run+type@<type>+block@<id>``)."""
    return fields.String(validate=validate.Regexp(USAGE_KEY, error="Not a block usage key."), **kwargs)


def NonEmpty(**kwargs: Any) -> fields.String:
    """A string that must not be empty."""
    return fields.String(validate=validate.Length(min=1), **kwargs)


def Price(**kwargs: Any) -> fields.Decimal:
    """A non-negative amount with two decimals; a string on the wire (no float rounding)."""
    return fields.Decimal(places=2, as_string=True, validate=validate.Range(min=0), **kwargs)


def Currency(**kwargs: Any) -> fields.String:
    """An ISO 4217 currency code, e.g. ``USD``."""
    return fields.String(validate=validate.Regexp(r"^[A-Z]{3}$", error="Not an ISO 4217 currency code."), **kwargs)


class UserPersonalDataSchema(EventSchema):
    """The learner's personal data (openedx-events ``UserPersonalData``)."""

    username = NonEmpty(required=True)
    email = fields.Email(required=True)
    name = fields.String(load_default="")


class UserDataSchema(EventSchema):
    """A platform user (openedx-events ``UserData``): LMS user id, active flag, personal data."""

    id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    is_active = fields.Boolean(required=True)
    pii = fields.Nested(UserPersonalDataSchema, required=True)


class CourseDataSchema(EventSchema):
    """A course run as the LMS names it (openedx-events learning ``CourseData``)."""

    course_key = CourseKey(required=True)
    display_name = fields.String(load_default="")
    start = UTCDateTime(load_default=None)
    end = UTCDateTime(load_default=None)


class ProgramDataSchema(EventSchema):
    """A program as the LMS names it (openedx-events ``ProgramData``)."""

    uuid = fields.UUID(required=True)
    title = NonEmpty(required=True)
    program_type = NonEmpty(required=True)
