"""The test helpers shipped to users (``event_tasks.testing`` and the pytest plugin)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import TestCase

from event_tasks import send_event
from event_tasks.errors import EventValidationError
from event_tasks.models import OutboxEvent, ProcessedEvent
from event_tasks.testing import capture_events, run_handlers
from schemas.content_authoring import COURSE_CREATED

PROBE = "org.openedx.learning.probe.created.v1"


class CaptureInsideATestCase(TestCase):
    """Django's TestCase never commits: the outbox would never publish; capture records at once."""

    def test_events_sent_in_a_transaction_are_captured_validated_and_not_outboxed(self):
        with capture_events(service="lms") as sent:
            with transaction.atomic():
                event = send_event(PROBE, {"n": 1}, key="k-1")
            with pytest.raises(EventValidationError, match="n: Not a valid integer"):
                send_event(PROBE, {"n": "one"})
        assert sent.types == [PROBE] and sent[0] is event
        assert (event.source, event.key, dict(event.data)) == ("lms", "k-1", {"n": 1, "note": ""})
        assert sent.of_type(PROBE) == [event]
        assert not OutboxEvent.objects.exists()


def test_capture_needs_no_broker_and_restores_the_real_publisher(settings):
    from event_tasks.send import publisher

    before = publisher._publisher
    with capture_events() as sent:
        send_event(PROBE, {"n": 2})
    assert len(sent) == 1 and sent[0].source == "test"
    assert publisher._publisher is before


def test_captured_events_fixture_comes_from_the_plugin(captured_events):
    send_event(PROBE, {"n": 3})
    assert captured_events.types == [PROBE]


@pytest.mark.django_db
def test_run_handlers_runs_a_services_handlers_with_duplicate_suppression():
    data = {"course": {"course_key": "course-v1:DemoX+PY101+2025_T1"}}
    first = run_handlers(COURSE_CREATED, data, service="discovery", id="ev-1")
    assert first.decision == "done" and first.applied and not first.duplicates
    again = run_handlers(COURSE_CREATED, data, service="discovery", id="ev-1")
    assert again.applied == [] and again.duplicates == first.applied
    assert ProcessedEvent.objects.filter(event_id="ev-1", service="discovery").count() == len(first.applied)


@pytest.mark.django_db
def test_run_handlers_refuses_a_type_the_service_does_not_consume():
    with pytest.raises(LookupError, match="no handler"):
        run_handlers(PROBE, {"n": 1}, service="discovery")


def test_a_producer_may_give_the_event_its_own_id():
    from event_tasks.errors import EventValidationError

    with capture_events() as sent:
        event = send_event(PROBE, {"n": 4}, id="order-1234")
        for bad in ("", "a:b", "x" * 65):
            with pytest.raises(EventValidationError, match="id"):
                send_event(PROBE, {"n": 4}, id=bad)
    assert event.id == "order-1234" and sent.events == [event]
