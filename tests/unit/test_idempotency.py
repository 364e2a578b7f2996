"""Duplicate suppression: one application per (event, handler), in the handler's transaction."""

import pytest

from event_tasks.handlers import Handler
from event_tasks.models import ProcessedEvent
from event_tasks.store import idempotency
from event_tasks.testing import make_event

TYPE = "org.openedx.learning.probe.created.v1"
pytestmark = pytest.mark.django_db


def test_a_duplicate_is_skipped_and_counted():
    calls = []
    handler = Handler(TYPE, calls.append)
    event = make_event(TYPE, {"n": 1})
    assert idempotency.apply("svc", handler, event) is True
    assert idempotency.apply("svc", handler, event) is False
    assert idempotency.apply("svc", handler, event) is False
    assert calls == [event]
    row = ProcessedEvent.objects.get(event_id=event.id)
    assert row.duplicates == 2 and row.handler == handler.name and row.service == "svc"


def test_a_failed_handler_leaves_no_mark_and_its_writes_roll_back():
    attempts = []

    def flaky(event):
        attempts.append(event.id)
        ProcessedEvent.objects.create(event_id="side-effect", handler="x", service="svc", event_type=TYPE)
        if len(attempts) == 1:
            raise RuntimeError("transient")

    handler = Handler(TYPE, flaky)
    event = make_event(TYPE, {"n": 2})
    with pytest.raises(RuntimeError):
        idempotency.apply("svc", handler, event)
    assert not ProcessedEvent.objects.exists()  # neither the mark nor the handler's write
    assert idempotency.apply("svc", handler, event) is True
    assert ProcessedEvent.objects.filter(event_id=event.id).count() == 1


def test_handlers_are_tracked_separately_and_can_opt_out():
    first, second, loose = [], [], []
    event = make_event(TYPE, {"n": 3})

    def record_first(e):
        first.append(e)

    def record_second(e):
        second.append(e)

    a = Handler(TYPE, record_first)
    b = Handler(TYPE, record_second)
    c = Handler(TYPE, loose.append, deduplicate=False)
    for _ in range(2):
        for h in (a, b, c):
            idempotency.apply("svc", h, event)
    assert (len(first), len(second), len(loose)) == (1, 1, 2)


def test_consumer_decorator_records_the_opt_out():
    import types

    from event_tasks import consumer
    from event_tasks.handlers import collect

    @consumer(TYPE, deduplicate=False)
    @consumer("org.openedx.learning.#")
    def handler(event):
        pass

    found = collect(types.SimpleNamespace(handler=handler))
    assert [(h.pattern, h.deduplicate) for h in found] == [("org.openedx.learning.#", True), (TYPE, False)]


def test_only_redelivered_attempts_that_never_finished_are_counted():
    # three attempts start and die (no end): the first is free, each later one counts the one before
    assert [idempotency.begin_redelivery("t1:svc", 0) for _ in range(3)] == [0, 1, 2]
    assert idempotency.begin_redelivery("t1:svc", 1) == 0  # another retry number: its own count
    idempotency.end_redelivery("t1:svc", 0)  # an attempt finished: nothing pending
    assert idempotency.begin_redelivery("t1:svc", 0) == 0
    idempotency.end_redelivery("t1:svc", 0)
    assert idempotency.begin_redelivery("t1:svc", 0) == 0  # finished attempts never add up


def test_the_mark_reads_back_like_any_row_and_its_time_compares_with_orm_cutoffs():
    import datetime as dt

    from django.utils import timezone

    before = timezone.now()
    event = make_event(TYPE, {"n": 5})
    idempotency.apply("svc", Handler(TYPE, lambda e: None), event)
    row = ProcessedEvent.objects.get(event_id=event.id)
    assert (row.service, row.event_type, row.duplicates) == ("svc", TYPE, 0)
    assert before <= row.processed_at <= timezone.now()
    # what retention's cutoffs do: the raw INSERT stores the time the way the ORM compares it
    assert ProcessedEvent.objects.filter(processed_at__lt=before + dt.timedelta(seconds=60)).count() == 1
    assert ProcessedEvent.objects.filter(processed_at__lt=before - dt.timedelta(seconds=1)).count() == 0
