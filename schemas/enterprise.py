"""Enterprise events: subscription plans and licenses, and learners' licensed enrollments.

Producers:

* **license_manager**: subscription plans (created, expired) and licenses (assigned, activated,
  renewed, expired, revoked);
* **lms** (where the enterprise integration runs): a learner's license-backed enterprise course
  enrollment changed.

Consumers (use case 5, replacing synchronous calls between these systems):

* **lms** keeps each learner's license state, to grant or withhold access to licensed content;
* **enterprise_catalog** keeps which catalogs back a live subscription plan;
* **license_manager** keeps which course enrollments each license pays for.

openedx-events has no license or plan events; these names follow its style. The licensed
enrollment payload reuses the field names of openedx-events' ``LicensedEnterpriseCourseEnrollment``,
``EnterpriseCourseEnrollment`` and ``EnterpriseCustomerUser`` (a subset of them). A license event's
type says what happened; its payload is the license as it is afterwards.
"""

from __future__ import annotations

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type

from .common import CourseKey, NonEmpty, UTCDateTime


# --- subscription plans -----------------------------------------------------------------------
class SubscriptionPlanSchema(EventSchema):
    """A customer's subscription: how many licenses, to which catalog, for how long."""

    uuid = fields.UUID(required=True)
    title = NonEmpty(required=True)
    enterprise_customer_uuid = fields.UUID(required=True)
    enterprise_catalog_uuid = fields.UUID(required=True)
    start_date = UTCDateTime(required=True)
    expiration_date = UTCDateTime(required=True)
    num_licenses = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class SubscriptionPlanEventSchema(EventSchema):
    subscription_plan = fields.Nested(SubscriptionPlanSchema, required=True)


SUBSCRIPTION_PLAN_CREATED = event_type(
    "org.openedx.enterprise.subscription_plan.created.v1",
    schema=SubscriptionPlanEventSchema,
    owner="license_manager",
    description="A subscription plan was created for an enterprise customer.",
)

SUBSCRIPTION_PLAN_EXPIRED = event_type(
    "org.openedx.enterprise.subscription_plan.expired.v1",
    schema=SubscriptionPlanEventSchema,
    owner="license_manager",
    description="A subscription plan reached its expiration date; its licenses no longer grant access.",
)


# --- licenses ---------------------------------------------------------------------------------
class LicenseSchema(EventSchema):
    """A license of a subscription plan, as it is after the change the event type names."""

    uuid = fields.UUID(required=True)
    subscription_plan_uuid = fields.UUID(required=True)
    enterprise_customer_uuid = fields.UUID(required=True)
    user_email = fields.Email(required=True)
    lms_user_id = fields.Integer(
        strict=True, load_default=None, validate=validate.Range(min=1)
    )  # known once the learner activates
    assigned_date = UTCDateTime(required=True)
    activation_date = UTCDateTime(load_default=None)
    revoked_date = UTCDateTime(load_default=None)
    expiration_date = UTCDateTime(required=True)


class LicenseEventSchema(EventSchema):
    license = fields.Nested(LicenseSchema, required=True)


LICENSE_ASSIGNED = event_type(
    "org.openedx.enterprise.license.assigned.v1",
    schema=LicenseEventSchema,
    owner="license_manager",
    description="A license was assigned to a learner's email (not yet activated).",
)

LICENSE_ACTIVATED = event_type(
    "org.openedx.enterprise.license.activated.v1",
    schema=LicenseEventSchema,
    owner="license_manager",
    description="A learner activated their license; it now grants access.",
)

LICENSE_RENEWED = event_type(
    "org.openedx.enterprise.license.renewed.v1",
    schema=LicenseEventSchema,
    owner="license_manager",
    description="A license moved to its plan's renewal (new plan, later expiration date).",
)

LICENSE_EXPIRED = event_type(
    "org.openedx.enterprise.license.expired.v1",
    schema=LicenseEventSchema,
    owner="license_manager",
    description="A license expired with its plan; it no longer grants access.",
)

LICENSE_REVOKED = event_type(
    "org.openedx.enterprise.license.revoked.v1",
    schema=LicenseEventSchema,
    owner="license_manager",
    description="An administrator revoked a license; it no longer grants access.",
)

#: Every license event type, and the license state each one leaves behind.
LICENSE_STATE_AFTER = {
    LICENSE_ASSIGNED: "assigned",
    LICENSE_ACTIVATED: "activated",
    LICENSE_RENEWED: "activated",
    LICENSE_EXPIRED: "expired",
    LICENSE_REVOKED: "revoked",
}


# --- learners' licensed enrollments -----------------------------------------------------------
class EnterpriseCustomerUserSchema(EventSchema):
    """The link between an LMS user and an enterprise customer (``EnterpriseCustomerUser``)."""

    id = fields.Integer(required=True, strict=True)
    enterprise_customer_uuid = fields.UUID(required=True)
    user_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    active = fields.Boolean(required=True)


class EnterpriseCourseEnrollmentSchema(EventSchema):
    """An enterprise learner's course enrollment (``EnterpriseCourseEnrollment``)."""

    id = fields.Integer(required=True, strict=True)
    created = UTCDateTime(required=True)
    modified = UTCDateTime(required=True)
    enterprise_customer_user = fields.Nested(EnterpriseCustomerUserSchema, required=True)
    course_id = CourseKey(required=True)
    saved_for_later = fields.Boolean(load_default=False)
    source_slug = fields.String(load_default=None)
    unenrolled = fields.Boolean(load_default=None)
    unenrolled_at = UTCDateTime(load_default=None)


class LicensedCourseEnrollmentSchema(EventSchema):
    """A course enrollment paid for by a license (``LicensedEnterpriseCourseEnrollment``)."""

    uuid = fields.UUID(required=True)
    created = UTCDateTime(required=True)
    modified = UTCDateTime(required=True)
    is_revoked = fields.Boolean(required=True)
    license_uuid = fields.UUID(required=True)
    enterprise_course_enrollment = fields.Nested(EnterpriseCourseEnrollmentSchema, required=True)


class LicensedCourseEnrollmentChangedSchema(EventSchema):
    licensed_course_enrollment = fields.Nested(LicensedCourseEnrollmentSchema, required=True)


LICENSED_COURSE_ENROLLMENT_CHANGED = event_type(
    "org.openedx.enterprise.licensed_course_enrollment.changed.v1",
    schema=LicensedCourseEnrollmentChangedSchema,
    owner="lms",
    description="A learner's license-backed enterprise enrollment was created or changed (unenrolled, revoked).",
)
