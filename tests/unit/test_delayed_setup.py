"""Celery's delayed-delivery step runs its set-up beside the worker's event loop (consume/delayed_setup.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from celery.worker.consumer.delayed_delivery import DelayedDelivery

from event_tasks.consume.delayed_setup import STEP_NAME, off_the_loop


class Blocking:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.done = threading.Event()
        self.calls: list[object] = []

    def start(self, consumer: object) -> None:
        self.calls.append(consumer)
        self.release.wait(10)
        self.done.set()


def test_the_step_name_is_celerys():
    assert DelayedDelivery.name == STEP_NAME


def test_start_returns_while_the_set_up_still_runs():
    step = Blocking()
    c = SimpleNamespace(blueprint=SimpleNamespace(steps={STEP_NAME: step}))
    assert off_the_loop(c)
    assert off_the_loop(c)  # a restart of the consumer wraps nothing twice
    step.start(c)  # the wrapped start: returns although the original waits
    assert not step.done.is_set()
    step.release.set()
    assert step.done.wait(10)
    assert step.calls == [c]


def test_a_consumer_without_the_step_is_left_alone():
    assert not off_the_loop(SimpleNamespace(blueprint=SimpleNamespace(steps={})))
    assert not off_the_loop(SimpleNamespace())
