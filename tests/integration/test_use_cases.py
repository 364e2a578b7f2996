"""Every use case (docs/architecture.md, "Use cases") end to end: producers' send_event → each consumer's projection.

Runs the demo platform (demo/runner.py) on the private Redis: the real reference services, one
real worker per service started from the Procfile by honcho, each with its own database.
"""

from __future__ import annotations

import pytest

from demo.runner import DEAD_LETTER_SERVICE, run
from demo.scenario import EXPECTED, STEPS
from event_tasks import catalog
from event_tasks.handlers import consuming_services, service_handlers
from tests.brokers import take_redis_db

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def report(redis_server, tmp_path_factory):
    url = take_redis_db(redis_server)
    lines: list[str] = []
    result = run(url, tmp_path_factory.mktemp("use-cases"), settings_module="config.settings.test", echo=lines.append)
    import redis

    redis.Redis.from_url(url).flushdb()
    return result


def test_every_service_projection_matches_the_scenario(report):
    assert report.mismatches == []
    for service, counts in EXPECTED.items():
        got = report.summaries[service]["counts"]
        assert {k: got[k] for k in counts} == counts, service


def test_every_delivery_succeeded_once_and_only_the_bad_message_failed(report):
    for service, summary in report.summaries.items():
        expected_failures = 1 if service == DEAD_LETTER_SERVICE else 0
        assert summary["results"]["FAILURE"] == expected_failures, service
        assert summary["applied"] == report.deliveries[service] - expected_failures, service
        assert summary["results"]["RETRY"] == 0, service  # nothing was retried: no other result rows
    (letter,) = report.summaries[DEAD_LETTER_SERVICE]["dead_letters"]
    assert letter["reason"] == "invalid_payload" and letter["event_type"] in letter["detail"]


def test_scenario_exercises_every_event_type_with_a_consumer():
    consumed = {t for s in consuming_services() for t in service_handlers(s).event_types}
    sent = {step.event_type for step in STEPS}
    assert consumed <= sent, f"types consumed but never sent by the scenario: {sorted(consumed - sent)}"
    assert {e.owner for e in catalog.all() if e.name in sent} >= {
        "studio",
        "discovery",
        "lms",
        "license_manager",
        "exams",
    }
    assert all(catalog.get(step.event_type).owner == step.producer for step in STEPS)
