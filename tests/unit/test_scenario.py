"""The demo scenario, without a broker: every step applied to every consuming service's handlers.

Checks that ``demo.scenario.STEPS`` drives each service's projection to ``EXPECTED``, whatever the
processing order and however often an event is delivered (the fabric promises neither order nor
exactly-once), and that every summary is JSON.
"""

from __future__ import annotations

import importlib
import json
import random

import pytest

from demo.scenario import EXPECTED, STEPS
from event_tasks import Event, catalog
from event_tasks.handlers import consuming_services, service_handlers
from event_tasks.testing import make_event

from .projection_helpers import at

pytestmark = pytest.mark.django_db


def scenario_events() -> list[Event]:
    """One event per step, one second apart, as the producers would have sent them."""
    return [
        make_event(step.event_type, step.data, key=step.key, source=step.producer, time=at(i))
        for i, step in enumerate(STEPS)
    ]


def apply(events: list[Event]) -> None:
    for event in events:
        for service in consuming_services():
            for handler in service_handlers(service).for_type(event.type):
                handler.func(event)


def counts() -> dict[str, dict[str, int]]:
    return {
        service: importlib.import_module(f"consumers.{service}.summary").summary()["counts"] for service in EXPECTED
    }


def test_expected_names_every_consuming_service():
    assert set(EXPECTED) == set(consuming_services())


def test_every_step_is_sent_by_the_owner_of_its_type():
    for step in STEPS:
        assert catalog.get(step.event_type).owner == step.producer, step
        json.dumps(step.data)


def test_every_type_a_service_consumes_is_sent_by_the_scenario():
    sent = {step.event_type for step in STEPS}
    for service in consuming_services():
        assert set(service_handlers(service).event_types) <= sent, service


def test_in_order_the_scenario_reaches_the_expected_projections():
    apply(scenario_events())
    assert counts() == EXPECTED


def test_in_any_order_and_with_duplicates_the_projections_are_the_same():
    events = scenario_events()
    shuffled = events + random.Random(7).sample(events, k=len(events) // 2)  # half of them twice
    random.Random(42).shuffle(shuffled)
    apply(shuffled)
    assert counts() == EXPECTED


def test_in_reverse_order_the_projections_are_the_same():
    apply(list(reversed(scenario_events())))
    assert counts() == EXPECTED


def test_summaries_are_json_with_readable_rows():
    apply(scenario_events())
    for service in EXPECTED:
        result = importlib.import_module(f"consumers.{service}.summary").summary()
        assert set(result) == {"counts", "rows"}
        assert json.loads(json.dumps(result)) == result
        assert result["rows"] and all(isinstance(row, str) for row in result["rows"]), service
