"""Ecommerce's event handlers: queue ``events.ecommerce``, ecommerce database.

Consumes, from the LMS (use case 4):

* ``org.openedx.ecommerce.order.placed.v1``, ``…order.fulfilled.v1``: orders and their seats;
* ``org.openedx.learning.course.enrollment.created.v1``, ``…enrollment.changed.v1``,
  ``org.openedx.learning.course.unenrollment.completed.v1``: learners' enrollment modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.ecommerce import ORDER_FULFILLED, ORDER_PLACED
from schemas.learning import COURSE_ENROLLMENT_CHANGED, COURSE_ENROLLMENT_CREATED, COURSE_UNENROLLMENT_COMPLETED

from .models import Enrollment, Order, OrderLine


@consumer(ORDER_PLACED)
def record_order_placed(event: Event) -> None:
    """Record a placed order (a late duplicate never undoes a fulfilment: it is older)."""
    _record_order(event, event.data["order"], status=Order.Status.PLACED, fulfilled_at=None)


@consumer(ORDER_FULFILLED)
def record_order_fulfilled(event: Event) -> None:
    """Mark the order fulfilled; builds the whole order if the placed event is not here yet."""
    _record_order(event, event.data["order"], status=Order.Status.FULFILLED, fulfilled_at=event.data["fulfilled_at"])


def _record_order(event: Event, order: Mapping[str, Any], *, status: str, fulfilled_at: Any) -> None:
    user = order["user"]
    with transaction.atomic():
        row, applied = apply_latest(
            Order,
            event,
            lookup={"number": order["order_number"]},
            values={
                "user_id": user["id"],
                "username": user["pii"]["username"],
                "email": user["pii"]["email"],
                "currency": order["currency"],
                "total": order["total"],
                "status": status,
                "date_placed": order["date_placed"],
                "fulfilled_at": fulfilled_at,
            },
        )
        if not applied:
            return
        row.lines.exclude(sku__in=[line["sku"] for line in order["lines"]]).delete()
        for line in order["lines"]:
            OrderLine.objects.update_or_create(
                order=row,
                sku=line["sku"],
                defaults={"course_run_key": line["course_key"], "mode": line["mode"], "price": line["price"]},
            )


@consumer(COURSE_ENROLLMENT_CREATED)
@consumer(COURSE_ENROLLMENT_CHANGED)
@consumer(COURSE_UNENROLLMENT_COMPLETED)
def record_enrollment(event: Event) -> None:
    """Keep each learner's latest enrollment mode and active flag per run."""
    enrollment = event.data["enrollment"]
    apply_latest(
        Enrollment,
        event,
        lookup={
            "user_id": enrollment["user"]["id"],
            "course_run_key": enrollment["course"]["course_key"],
        },
        values={
            "username": enrollment["user"]["pii"]["username"],
            "mode": enrollment["mode"],
            # An unenrollment is inactive whatever flag the payload carries.
            "is_active": enrollment["is_active"] and event.type != COURSE_UNENROLLMENT_COMPLETED,
        },
    )
