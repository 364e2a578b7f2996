"""What the license manager's projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from .models import LicensedEnrollment


def summary() -> dict[str, Any]:
    active = Q(is_revoked=False, unenrolled=False)
    return {
        "counts": {
            "licensed_enrollments": LicensedEnrollment.objects.count(),
            "active_licensed_enrollments": LicensedEnrollment.objects.filter(active).count(),
        },
        "rows": [f"license {e.license_uuid}: {e}" for e in LicensedEnrollment.objects.all()[:10]],
    }
