"""Per-handler options of ``@consumer`` and the delivery decision (``delivery.deliver``), in process."""

from __future__ import annotations

import types

import pytest
from celery import Celery

from event_tasks import consumer
from event_tasks.consume.delivery import deliver
from event_tasks.consume.dispatch import register_tasks
from event_tasks.errors import ConfigurationError
from event_tasks.handlers import Handler, build, collect
from event_tasks.models import ProcessedEvent
from event_tasks.testing import make_event

pytestmark = pytest.mark.django_db
TYPE = "org.openedx.learning.probe.created.v1"


class Permanent(Exception):
    pass


def handlers_of(**functions):
    return build("svc", collect(types.SimpleNamespace(**functions)), "tests.fabric.schemas").handlers


def test_name_is_the_duplicate_key_so_a_renamed_function_does_not_reapply():
    calls = []

    @consumer(TYPE, name="credentials.award")
    def award_v1(event):
        calls.append("v1")

    @consumer(TYPE, name="credentials.award")
    def award_renamed(event):
        calls.append("renamed")

    event = make_event(TYPE, {"n": 1})
    (old,) = handlers_of(award_v1=award_v1)
    (new,) = handlers_of(award_renamed=award_renamed)
    assert deliver("svc", [old], event, retries=0, default_max_retries=3).applied == ["credentials.award"]
    outcome = deliver("svc", [new], event, retries=0, default_max_retries=3)
    assert outcome.duplicates == ["credentials.award"] and calls == ["v1"]
    assert ProcessedEvent.objects.get(event_id=event.id).handler == "credentials.award"


def test_two_functions_under_one_name_are_refused():
    @consumer(TYPE, name="same")
    def a(event):
        pass

    @consumer(TYPE, name="same")
    def b(event):
        pass

    with pytest.raises(ConfigurationError, match="named 'same'"):
        handlers_of(a=a, b=b)


def test_max_retries_is_per_handler_and_dont_retry_dead_letters_at_once():
    @consumer(TYPE, max_retries=1)
    def flaky(event):
        raise RuntimeError("down")

    @consumer(TYPE, dont_retry=[Permanent])
    def strict(event):
        raise Permanent("never")

    event = make_event(TYPE, {"n": 2})
    (f,) = handlers_of(flaky=flaky)
    assert deliver("svc", [f], event, retries=0, default_max_retries=5).decision == "retry"
    last = deliver("svc", [f], event, retries=1, default_max_retries=5)
    assert (last.decision, last.reason) == ("dead_letter", "max_retries")
    (s,) = handlers_of(strict=strict)
    out = deliver("svc", [s], event, retries=0, default_max_retries=5)
    assert (out.decision, out.reason) == ("dead_letter", "not_retried")
    assert "Permanent: never" in out.detail


def test_retry_for_limits_what_is_retried():
    @consumer(TYPE, retry_for=[ConnectionError])
    def remote(event):
        raise KeyError("bug, not a transient failure")

    (h,) = handlers_of(remote=remote)
    out = deliver("svc", [h], make_event(TYPE, {"n": 3}), retries=0, default_max_retries=5)
    assert (out.decision, out.reason) == ("dead_letter", "not_retried")


def test_one_failing_handler_does_not_stop_the_others_and_only_they_rerun():
    runs = {"ok": 0, "bad": 0}

    @consumer(TYPE)
    def ok(event):
        runs["ok"] += 1

    @consumer(TYPE)
    def bad(event):
        runs["bad"] += 1
        if runs["bad"] == 1:
            raise RuntimeError("transient")

    event = make_event(TYPE, {"n": 4})
    hs = handlers_of(bad=bad, ok=ok)
    first = deliver("svc", hs, event, retries=0, default_max_retries=3)
    assert first.decision == "retry" and len(first.applied) == 1
    second = deliver("svc", hs, event, retries=1, default_max_retries=3)
    assert second.decision == "done" and second.duplicates and runs == {"ok": 1, "bad": 2}


def test_time_limit_of_a_delivery_is_the_largest_of_its_handlers():
    @consumer(TYPE, time_limit=7)
    def quick(event):
        pass

    @consumer(TYPE, time_limit=40)
    def slow(event):
        pass

    @consumer("org.openedx.learning.probe.updated.v1")
    def other(event):
        pass

    app = Celery("limits", broker="memory://", set_as_current=False)
    service = build("svc", collect(types.SimpleNamespace(quick=quick, slow=slow, other=other)), "tests.fabric.schemas")
    register_tasks(
        app, "svc", service, queue_name="events.svc", max_retries=3, backoff_base=1, backoff_cap=2, time_limit=1500
    )
    assert app.tasks[TYPE].time_limit == 40
    assert app.tasks["org.openedx.learning.probe.updated.v1"].time_limit == 1500


@pytest.mark.parametrize("bad", [{"max_retries": -1}, {"time_limit": 0}, {"dont_retry": ["ValueError"]}, {"name": ""}])
def test_bad_options_are_refused_when_decorating(bad):
    with pytest.raises(ConfigurationError):
        consumer(TYPE, **bad)


def test_a_handler_is_a_plain_function_still():
    @consumer(TYPE, name="plain")
    def plain(event):
        return event.data["n"] * 2

    assert plain(make_event(TYPE, {"n": 21})) == 42
    assert isinstance(handlers_of(plain=plain)[0], Handler)


def test_a_batch_handler_gets_fresh_events_in_one_transaction_with_one_bulk_mark():
    from event_tasks.consume.batching import deliver_batch

    seen = []

    @consumer(TYPE, batch=10)
    def many(events):
        seen.append([e.data["n"] for e in events])

    (h,) = handlers_of(many=many)
    events = [make_event(TYPE, {"n": i}) for i in range(3)]
    assert deliver_batch("svc", h, events)[0] == [e.id for e in events]
    more = events[1:] + [make_event(TYPE, {"n": 9})]
    applied, duplicates = deliver_batch("svc", h, more)
    assert seen == [[0, 1, 2], [9]] and duplicates == [events[1].id, events[2].id]
    assert ProcessedEvent.objects.get(event_id=events[1].id).duplicates == 1


def test_a_failing_batch_leaves_no_mark():
    from event_tasks.consume.batching import deliver_batch

    @consumer(TYPE, batch=10)
    def broken(events):
        raise RuntimeError("one bad event spoils the batch")

    (h,) = handlers_of(broken=broken)
    events = [make_event(TYPE, {"n": i}) for i in range(3)]
    with pytest.raises(RuntimeError):
        deliver_batch("svc", h, events)
    assert not ProcessedEvent.objects.filter(event_id__in=[e.id for e in events]).exists()


def test_a_batch_handler_on_the_single_path_gets_a_list():
    got = []

    @consumer(TYPE, batch=5)
    def many(events):
        got.append(len(events))

    (h,) = handlers_of(many=many)
    assert deliver("svc", [h], make_event(TYPE, {"n": 1}), retries=1, default_max_retries=3).decision == "done"
    assert got == [1]


def test_a_batched_type_has_one_handler():
    @consumer(TYPE, batch=5)
    def many(events):
        pass

    @consumer(TYPE)
    def one(event):
        pass

    with pytest.raises(ConfigurationError, match="a batched type has one handler"):
        handlers_of(many=many, one=one)


@pytest.mark.parametrize("bad", [{"batch": 0}, {"batch": True}, {"batch": 5, "batch_wait": 0}])
def test_bad_batch_options_are_refused(bad):
    with pytest.raises(ConfigurationError):
        consumer(TYPE, **bad)
