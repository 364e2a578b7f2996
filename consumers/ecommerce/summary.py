"""What ecommerce's projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from .models import Enrollment, Order, OrderLine


def summary() -> dict[str, Any]:
    rows = [
        f"order {o.number}: {o.username} {o.total} {o.currency} {o.status}: "
        + ", ".join(f"{line.course_run_key} {line.mode}" for line in o.lines.all())
        for o in Order.objects.prefetch_related("lines")[:10]
    ]
    rows += [f"enrollment: {e}" for e in Enrollment.objects.all()[:10]]
    return {
        "counts": {
            "orders": Order.objects.count(),
            "fulfilled_orders": Order.objects.filter(status=Order.Status.FULFILLED).count(),
            "order_lines": OrderLine.objects.count(),
            "enrollments": Enrollment.objects.count(),
            "active_enrollments": Enrollment.objects.filter(is_active=True).count(),
        },
        "rows": rows,
    }
