"""The enterprise catalog's event handlers: queue ``events.enterprise_catalog``, its own database.

Consumes, from the license manager (use case 5):

* ``org.openedx.enterprise.subscription_plan.created.v1``, ``…subscription_plan.expired.v1``:
  which catalogs back a live plan;

from discovery's Publisher (use case 8):

* ``org.openedx.catalog.course_run.published.v1``: course run metadata shown in enterprise catalogs.
"""

from __future__ import annotations

from consumers.projection import apply_latest
from event_tasks import Event, consumer
from schemas.catalog import COURSE_RUN_PUBLISHED
from schemas.enterprise import SUBSCRIPTION_PLAN_CREATED, SUBSCRIPTION_PLAN_EXPIRED

from .models import ContentMetadata, SubscriptionCatalog


@consumer(SUBSCRIPTION_PLAN_CREATED)
@consumer(SUBSCRIPTION_PLAN_EXPIRED)
def record_subscription_plan(event: Event) -> None:
    """Keep each plan's catalog and whether the plan is live."""
    plan = event.data["subscription_plan"]
    expired = event.type == SUBSCRIPTION_PLAN_EXPIRED
    apply_latest(
        SubscriptionCatalog,
        event,
        lookup={"plan_uuid": plan["uuid"]},
        values={
            "title": plan["title"],
            "enterprise_customer_uuid": plan["enterprise_customer_uuid"],
            "enterprise_catalog_uuid": plan["enterprise_catalog_uuid"],
            "start_date": plan["start_date"],
            "expiration_date": plan["expiration_date"],
            "num_licenses": plan["num_licenses"],
            "status": SubscriptionCatalog.Status.EXPIRED if expired else SubscriptionCatalog.Status.ACTIVE,
        },
    )


@consumer(COURSE_RUN_PUBLISHED)
def record_course_run_metadata(event: Event) -> None:
    """Keep each published run's metadata (seats as JSON, the way catalogs serve them)."""
    run = event.data["course_run"]
    apply_latest(
        ContentMetadata,
        event,
        lookup={"content_key": run["key"]},
        values={
            "parent_content_key": run["course_key"],
            "title": run["title"],
            "start": run["start"],
            "end": run["end"],
            "enrollment_end": run["enrollment_end"],
            "pacing_type": run["pacing_type"],
            "marketing_url": run["marketing_url"],
            "seats": [
                {
                    "type": seat["type"],
                    "price": str(seat["price"]),
                    "currency": seat["currency"],
                    "upgrade_deadline": seat["upgrade_deadline"].isoformat() if seat["upgrade_deadline"] else None,
                }
                for seat in run["seats"]
            ],
        },
    )
