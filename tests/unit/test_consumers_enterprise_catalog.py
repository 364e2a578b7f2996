"""The enterprise catalog's handlers: subscription plans, and Publisher's course run metadata."""

from __future__ import annotations

import pytest

from consumers.enterprise_catalog import handlers
from consumers.enterprise_catalog.models import ContentMetadata, SubscriptionCatalog
from consumers.enterprise_catalog.summary import summary
from demo.scenario import ACME_CATALOG, PLAN_2025, PY_COURSE, PY_RUN, PY_RUN_UUID, plan, published_run
from event_tasks.testing import make_event
from schemas.catalog import COURSE_RUN_PUBLISHED
from schemas.enterprise import SUBSCRIPTION_PLAN_CREATED, SUBSCRIPTION_PLAN_EXPIRED

from .projection_helpers import at

pytestmark = pytest.mark.django_db


def plan_event(event_type: str, seconds: float):
    data = plan(PLAN_2025, "Acme 2025", "2025-01-01T00:00:00Z", "2025-12-31T23:59:59Z")
    return make_event(event_type, data, key=PLAN_2025, time=at(seconds), source="license_manager")


def test_a_plan_is_created_then_expires():
    handlers.record_subscription_plan(plan_event(SUBSCRIPTION_PLAN_CREATED, 1))
    row = SubscriptionCatalog.objects.get()
    assert (row.title, str(row.enterprise_catalog_uuid), row.num_licenses, row.status) == (
        "Acme 2025",
        ACME_CATALOG,
        50,
        "active",
    )
    handlers.record_subscription_plan(plan_event(SUBSCRIPTION_PLAN_EXPIRED, 2))
    row.refresh_from_db()
    assert row.status == "expired"


def test_a_late_creation_does_not_revive_an_expired_plan_and_a_repeat_is_harmless():
    expired = plan_event(SUBSCRIPTION_PLAN_EXPIRED, 5)
    handlers.record_subscription_plan(expired)
    handlers.record_subscription_plan(plan_event(SUBSCRIPTION_PLAN_CREATED, 1))
    handlers.record_subscription_plan(expired)
    assert SubscriptionCatalog.objects.count() == 1
    assert SubscriptionCatalog.objects.get().status == "expired"


def published_event(seconds: float, price: str):
    data = published_run(PY_RUN, PY_RUN_UUID, PY_COURSE, verified_price=price, enrollment_end="2025-09-15T00:00:00Z")
    return make_event(COURSE_RUN_PUBLISHED, data, key=PY_RUN, time=at(seconds), source="discovery")


def test_published_run_metadata_is_kept_with_its_seats_as_json():
    handlers.record_course_run_metadata(published_event(1, "49.00"))
    row = ContentMetadata.objects.get()
    assert (row.content_key, row.parent_content_key, row.title) == (PY_RUN, PY_COURSE, "Python for Everyone")
    assert row.seats[1] == {
        "type": "verified",
        "price": "49.00",
        "currency": "USD",
        "upgrade_deadline": "2025-11-15T00:00:00+00:00",
    }


def test_an_older_publish_is_ignored_and_a_repeat_is_harmless():
    newer = published_event(3, "39.00")
    handlers.record_course_run_metadata(newer)
    handlers.record_course_run_metadata(published_event(1, "49.00"))
    handlers.record_course_run_metadata(newer)
    assert ContentMetadata.objects.count() == 1
    assert ContentMetadata.objects.get().seats[1]["price"] == "39.00"


def test_summary_reports_counts_and_rows():
    handlers.record_subscription_plan(plan_event(SUBSCRIPTION_PLAN_CREATED, 1))
    handlers.record_course_run_metadata(published_event(1, "49.00"))
    result = summary()
    assert result["counts"] == {"subscription_catalogs": 1, "active_subscription_catalogs": 1, "content_metadata": 1}
    assert any("verified 49.00 USD" in row for row in result["rows"])
