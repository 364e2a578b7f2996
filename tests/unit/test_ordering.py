"""The key gate of ordered types (event_tasks/consume/ordering.py) and ``@consumer(ordered=...)``."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from event_tasks import consumer
from event_tasks.consume.ordering import HELD_HEADER, KeyGate, RetryInPlace, gate_of, key_of
from event_tasks.errors import ConfigurationError


class FakeMessage:
    """What the gate uses of a kombu message: headers, the decoded body, its ack and reject."""

    def __init__(self, event_id: str, key: str) -> None:
        self.headers: dict[str, object] = {"id": event_id}
        self.body = [[{"id": event_id, "key": key}, {}], {}, {}]
        self.acknowledged = False
        self.settled: list[str] = []

    def decode(self) -> object:
        return self.body

    def ack_log_error(self, logger: object, errors: object, multiple: bool = False) -> None:
        self.acknowledged = True
        self.settled.append("ack")

    def reject_log_error(self, logger: object, errors: object, requeue: bool = False) -> None:
        self.acknowledged = True
        self.settled.append(f"reject requeue={requeue}")


class FakeTimer:
    def __init__(self) -> None:
        self.due: list[tuple[float, Callable[[], None]]] = []

    def call_after(self, secs: float, fun: Callable[[], None]) -> None:
        self.due.append((secs, fun))

    def fire(self) -> None:
        due, self.due = self.due, []
        for _, fun in due:
            fun()


def make_gate() -> tuple[KeyGate, list[FakeMessage], FakeTimer]:
    ran: list[FakeMessage] = []
    timer = FakeTimer()
    gate = KeyGate(timer, "svc", ran.append, lambda: None)  # type: ignore[arg-type]  # the fakes
    return gate, ran, timer


def settle(message: FakeMessage) -> None:
    message.ack_log_error(None, ())


def test_one_delivery_per_key_in_order_other_keys_go_on():
    gate, ran, timer = make_gate()
    a1, a2, a3, b1 = FakeMessage("a1", "a"), FakeMessage("a2", "a"), FakeMessage("a3", "a"), FakeMessage("b1", "b")
    for m in (a1, a2, a3, b1):
        gate.take(m.body[0][0]["key"], m)  # type: ignore[index, arg-type]  # the fake's body
    assert ran == [a1, b1]
    assert gate.held == 2
    assert HELD_HEADER not in a1.headers  # nothing waited for it when it started
    gate.again(a1, 0)  # type: ignore[arg-type]  # its next attempt says who waits for it (a dead letter tells)
    timer.fire()
    assert a1.headers[HELD_HEADER] == {"key": "a", "count": 2, "ids": ["a2", "a3"]}
    settle(a1)
    assert ran == [a1, b1, a1, a2]
    settle(b1)
    settle(a2)
    assert ran == [a1, b1, a1, a2, a3]
    assert HELD_HEADER not in a3.headers
    settle(a3)
    assert gate.keys == {} and gate.held == 0


def test_a_retry_in_place_keeps_the_key_and_counts_the_attempt():
    gate, ran, timer = make_gate()
    first, second = FakeMessage("a1", "a"), FakeMessage("a2", "a")
    gate.take("a", first)  # type: ignore[arg-type]  # the fake
    gate.take("a", second)  # type: ignore[arg-type]
    assert gate.again(first, 0.5, "retries")  # type: ignore[arg-type]
    assert first.headers["retries"] == 1
    assert timer.due[0][0] == 0.5
    assert ran == [first]  # the later event still waits
    timer.fire()
    assert ran == [first, first]
    settle(first)
    assert ran == [first, first, second]


def test_celery_requeueing_a_held_delivery_keeps_it_here():
    gate, ran, timer = make_gate()
    first, second = FakeMessage("a1", "a"), FakeMessage("a2", "a")
    gate.take("a", first)  # type: ignore[arg-type]
    gate.take("a", second)  # type: ignore[arg-type]
    first.reject_log_error(None, (), requeue=True)
    assert first.settled == []  # not back in the broker's queue, where a2 would overtake it
    timer.fire()
    assert ran == [first, first]
    first.reject_log_error(None, (), requeue=False)
    assert first.settled == ["reject requeue=False"]
    assert ran[-1] is second


def test_a_cleared_gate_ignores_what_an_old_connection_settles():
    gate, ran, timer = make_gate()
    first, second = FakeMessage("a1", "a"), FakeMessage("a2", "a")
    gate.take("a", first)  # type: ignore[arg-type]
    gate.take("a", second)  # type: ignore[arg-type]
    gate.clear()
    assert gate_of(first) is None
    assert not gate.again(first, 0)  # type: ignore[arg-type]
    settle(first)
    assert ran == [first] and gate.keys == {}


def test_key_of_reads_the_envelope():
    assert key_of([[{"id": "x", "key": "k"}, {}], {}, {}]) == "k"
    assert key_of([[{"id": "x", "key": None}, {}], {}, {}]) is None
    assert key_of([[], {}, {}]) is None
    assert key_of("nonsense") is None


def test_retry_in_place_crosses_the_pool_intact():
    again = pickle.loads(pickle.dumps(RetryInPlace("ConnectionError: down", True, 0.25)))
    assert (again.reason, again.requeue, again.countdown) == ("ConnectionError: down", True, 0.25)


def test_ordered_options_are_checked():
    with pytest.raises(ConfigurationError, match="drop batch"):
        consumer("org.openedx.learning.probe.created.v1", ordered=True, batch=10)
    with pytest.raises(ConfigurationError, match="True or False"):
        consumer("org.openedx.learning.probe.created.v1", ordered="yes")  # type: ignore[arg-type]


@pytest.mark.redis
def test_the_queue_lease_is_one_holders_at_a_time(fresh_redis_url):
    import contextlib

    import redis

    from event_tasks.brokers.redis.lease import QueueLease, lease_key

    client = redis.Redis.from_url(fresh_redis_url)

    def acquire():
        return contextlib.nullcontext(client)

    first = QueueLease(acquire, "events.o1", "w1:1", ttl=5)
    second = QueueLease(acquire, "events.o1", "w2:2", ttl=5)
    assert first.take() is None
    assert first.take() is None  # renewed
    assert second.take() == "w1:1"
    assert 0 < client.pttl(lease_key("events.o1")) <= 5000
    second.release()  # not its lease: nothing happens
    assert second.take() == "w1:1"
    first.release()
    assert second.wait(poll=0.01) < 1
    assert first.take() == "w2:2"
