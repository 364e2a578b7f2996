"""The Prometheus exporter turns one status reading into metric families (the scrape over HTTP
against real brokers and databases: tests/integration/test_metrics.py)."""

from __future__ import annotations

from prometheus_client import generate_latest

from event_tasks.models import DeadLetter
from event_tasks.ops.metrics import StatusCollector, registry

STATUS = {
    "broker": "redis",
    "workers": None,
    "notes": [],
    "services": [
        {
            "service": "alpha",
            "queue": "events.alpha",
            "consumes": True,
            "exists": True,
            "depth": 7,
            "unacked": 2,
            "oldest_age": 12.5,
            "consumers": None,
            "workers": [],
            "database": "default",
            "dead_letters": {"total": 3, "by_reason": {"max_retries": 2, "undecodable": 1}},
            "outbox": {"pending": 4, "oldest_age": 30.0},
        },
        {
            "service": "prober",
            "queue": "events.prober",
            "consumes": False,
            "exists": False,
            "depth": 0,
            "unacked": None,
            "oldest_age": None,
            "consumers": None,
            "workers": [],
            "database": None,
            "dead_letters": None,
            "outbox": None,
        },
    ],
}


def scrape(collector: StatusCollector) -> str:
    return generate_latest(registry(collector)).decode()


def test_one_reading_becomes_labelled_samples():
    text = scrape(StatusCollector(read=lambda *a, **k: STATUS, read_duplicates=lambda alias: {"alpha.on_probe": 5}))
    assert 'event_tasks_queue_depth{queue="events.alpha",service="alpha"} 7.0' in text
    assert 'event_tasks_queue_unacked{service="alpha"} 2.0' in text
    assert 'event_tasks_queue_oldest_age_seconds{service="alpha"} 12.5' in text
    assert 'event_tasks_dead_letters{reason="max_retries",service="alpha"} 2.0' in text
    assert 'event_tasks_dead_letters{reason="undecodable",service="alpha"} 1.0' in text
    for reason in DeadLetter.Reason.values:  # every reason is there, zero included
        assert f'event_tasks_dead_letters{{reason="{reason}",service="alpha"}}' in text
    assert 'event_tasks_outbox_pending{service="alpha"} 4.0' in text
    assert 'event_tasks_outbox_oldest_age_seconds{service="alpha"} 30.0' in text
    assert 'event_tasks_duplicates_suppressed_total{handler="alpha.on_probe",service="alpha"} 5.0' in text
    assert "event_tasks_up 1.0" in text
    assert 'service="prober"' not in text  # no queue, no database here: nothing invented
    assert "event_tasks_workers{" not in text  # workers were not asked


def test_a_failed_reading_is_up_0_not_a_failed_scrape():
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    text = scrape(StatusCollector(read=broken))
    assert "event_tasks_up 0.0" in text
    assert "event_tasks_queue_depth{" not in text
    assert "event_tasks_scrape_duration_seconds" in text


def test_registering_reads_nothing_until_a_scrape():
    from prometheus_client import CollectorRegistry

    calls = []
    reg = CollectorRegistry(auto_describe=True)  # like prometheus_client.REGISTRY
    reg.register(StatusCollector(read=lambda *a, **k: calls.append(1) or STATUS, read_duplicates=lambda alias: {}))
    assert calls == []
    assert "event_tasks_up 1.0" in generate_latest(reg).decode() and calls == [1]
