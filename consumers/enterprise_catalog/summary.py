"""What the enterprise catalog's projection holds, for the demo and operators (JSON-ready)."""

from __future__ import annotations

from typing import Any

from .models import ContentMetadata, SubscriptionCatalog


def summary() -> dict[str, Any]:
    rows = [f"plan: {s}" for s in SubscriptionCatalog.objects.all()[:10]]
    rows += [
        f"content: {c.content_key} {c.title!r} seats: "
        + ", ".join(f"{seat['type']} {seat['price']} {seat['currency']}" for seat in c.seats)
        for c in ContentMetadata.objects.all()[:10]
    ]
    return {
        "counts": {
            "subscription_catalogs": SubscriptionCatalog.objects.count(),
            "active_subscription_catalogs": SubscriptionCatalog.objects.filter(
                status=SubscriptionCatalog.Status.ACTIVE
            ).count(),
            "content_metadata": ContentMetadata.objects.count(),
        },
        "rows": rows,
    }
