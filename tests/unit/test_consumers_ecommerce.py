"""Ecommerce's handlers: orders and enrollments from the LMS."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consumers.ecommerce import handlers
from consumers.ecommerce.models import Enrollment, Order, OrderLine
from consumers.ecommerce.summary import summary
from demo.scenario import ADA, DS_RUN, PY_RUN, enrollment, order
from event_tasks.testing import make_event
from schemas.ecommerce import ORDER_FULFILLED, ORDER_PLACED
from schemas.learning import COURSE_ENROLLMENT_CHANGED, COURSE_ENROLLMENT_CREATED, COURSE_UNENROLLMENT_COMPLETED

from .projection_helpers import at

pytestmark = pytest.mark.django_db
NUMBER = "EDX-1"


def placed(seconds: float, key: str = PY_RUN, price: str = "39.00"):
    return make_event(ORDER_PLACED, {"order": order(NUMBER, ADA, key, price)}, key=NUMBER, time=at(seconds))


def fulfilled(seconds: float, key: str = PY_RUN, price: str = "39.00"):
    return make_event(
        ORDER_FULFILLED,
        {"order": order(NUMBER, ADA, key, price), "fulfilled_at": "2025-08-21T09:31:00Z"},
        key=NUMBER,
        time=at(seconds),
    )


def test_an_order_is_placed_then_fulfilled():
    handlers.record_order_placed(placed(1))
    row = Order.objects.get()
    assert (row.number, row.username, row.email, row.total, row.currency, row.status, row.fulfilled_at) == (
        NUMBER,
        "ada",
        "ada@example.com",
        Decimal("39.00"),
        "USD",
        "placed",
        None,
    )
    line = OrderLine.objects.get()
    assert (line.course_run_key, line.mode, line.price) == (PY_RUN, "verified", Decimal("39.00"))

    handlers.record_order_fulfilled(fulfilled(2))
    row.refresh_from_db()
    assert row.status == "fulfilled" and row.fulfilled_at.isoformat() == "2025-08-21T09:31:00+00:00"


def test_a_fulfilment_that_arrives_first_builds_the_order_and_the_late_placement_is_ignored():
    handlers.record_order_fulfilled(fulfilled(2))
    handlers.record_order_placed(placed(1))
    row = Order.objects.get()
    assert row.status == "fulfilled" and row.last_event_time == at(2)
    assert OrderLine.objects.count() == 1


def test_a_newer_order_event_replaces_its_lines():
    handlers.record_order_placed(placed(1, key=PY_RUN))
    handlers.record_order_fulfilled(fulfilled(2, key=DS_RUN, price="99.00"))
    assert list(OrderLine.objects.values_list("course_run_key", flat=True)) == [DS_RUN]
    assert Order.objects.get().total == Decimal("99.00")


def test_repeated_order_events_are_harmless():
    for event in (placed(1), placed(1), fulfilled(2), fulfilled(2)):
        handler = handlers.record_order_placed if event.type == ORDER_PLACED else handlers.record_order_fulfilled
        handler(event)
    assert (Order.objects.count(), OrderLine.objects.count()) == (1, 1)
    assert Order.objects.get().status == "fulfilled"


def enroll_event(event_type: str, seconds: float, mode: str = "audit", active: bool = True):
    return make_event(event_type, enrollment(ADA, PY_RUN, mode, active=active), key=PY_RUN, time=at(seconds))


def test_enrollment_created_changed_and_unenrolled():
    handlers.record_enrollment(enroll_event(COURSE_ENROLLMENT_CREATED, 1))
    handlers.record_enrollment(enroll_event(COURSE_ENROLLMENT_CHANGED, 2, "verified"))
    row = Enrollment.objects.get()
    assert (row.username, row.course_run_key, row.mode, row.is_active) == ("ada", PY_RUN, "verified", True)
    handlers.record_enrollment(enroll_event(COURSE_UNENROLLMENT_COMPLETED, 3, "verified", active=False))
    row.refresh_from_db()
    assert row.is_active is False


def test_an_older_enrollment_event_is_ignored_and_a_repeat_is_harmless():
    newer = enroll_event(COURSE_ENROLLMENT_CHANGED, 5, "verified")
    handlers.record_enrollment(newer)
    handlers.record_enrollment(enroll_event(COURSE_ENROLLMENT_CREATED, 1, "audit"))
    handlers.record_enrollment(newer)
    row = Enrollment.objects.get()
    assert (row.mode, row.last_event_time) == ("verified", at(5))


def test_summary_reports_counts_and_rows():
    handlers.record_order_fulfilled(fulfilled(1))
    handlers.record_enrollment(enroll_event(COURSE_ENROLLMENT_CREATED, 1))
    result = summary()
    assert result["counts"] == {
        "orders": 1,
        "fulfilled_orders": 1,
        "order_lines": 1,
        "enrollments": 1,
        "active_enrollments": 1,
    }
    assert result["rows"][0].startswith(f"order {NUMBER}: ada 39.00 USD fulfilled")
