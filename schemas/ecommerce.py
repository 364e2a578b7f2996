"""Commerce events: orders placed at the LMS checkout and their fulfilment (seats granted).

Producer: **lms** (it runs the checkout and creates the paid enrollments).
Consumers: **ecommerce**, the new order-keeping service (use case 4). Any other service may
subscribe to the same events without going through ecommerce.

openedx-events defines no order events; these names follow its style. Both events carry the
whole order, so either one alone is enough to build the consumer's record.
"""

from __future__ import annotations

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type

from .common import CourseKey, Currency, NonEmpty, Price, UserDataSchema, UTCDateTime


class OrderLineSchema(EventSchema):
    """One seat bought: a course run in an enrollment mode, at a price."""

    sku = NonEmpty(required=True)
    course_key = CourseKey(required=True)
    mode = NonEmpty(required=True)
    price = Price(required=True)


class OrderSchema(EventSchema):
    """An order as the checkout recorded it."""

    order_number = NonEmpty(required=True)
    user = fields.Nested(UserDataSchema, required=True)
    currency = Currency(required=True)
    total = Price(required=True)
    date_placed = UTCDateTime(required=True)
    lines = fields.List(fields.Nested(OrderLineSchema), required=True, validate=validate.Length(min=1))


class OrderPlacedSchema(EventSchema):
    order = fields.Nested(OrderSchema, required=True)


class OrderFulfilledSchema(EventSchema):
    order = fields.Nested(OrderSchema, required=True)
    fulfilled_at = UTCDateTime(required=True)


ORDER_PLACED = event_type(
    "org.openedx.ecommerce.order.placed.v1",
    schema=OrderPlacedSchema,
    owner="lms",
    description="A learner placed (and paid) an order for one or more course seats.",
)

ORDER_FULFILLED = event_type(
    "org.openedx.ecommerce.order.fulfilled.v1",
    schema=OrderFulfilledSchema,
    owner="lms",
    description="Every seat of an order was granted (the learner is enrolled in each bought mode).",
)
