"""Receivers of the four signals, as an Open edX service connects them; each records what it got to
``TEST_RECORD_DIR/<service>.openedx.jsonl``. The receiver of ``TEST_OPENEDX_RAISE`` raises."""

from __future__ import annotations

import json
import os

from django.apps import AppConfig
from django.conf import settings


def record(signal, **kwargs):
    from event_tasks.openedx.codec import serializer

    metadata = kwargs.pop("metadata")
    from_bus = kwargs.pop("from_event_bus")
    kwargs.pop("sender", None)
    line = {
        "event_type": signal.event_type,
        "metadata": metadata.to_json_data(),
        "from_event_bus": from_bus,
        "data": serializer(signal).to_dict(kwargs),
        "repr": repr(sorted(kwargs.items())),
        "pid": os.getpid(),
    }
    path = os.path.join(settings.TEST_RECORD_DIR, f"{settings.EVENT_TASKS_SERVICE}.openedx.jsonl")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    if signal.event_type == settings.TEST_OPENEDX_RAISE:
        raise RuntimeError(f"receiver of {signal.event_type} fails on purpose")


def receiver(sender=None, signal=None, **kwargs):
    record(signal, **kwargs)


class Config(AppConfig):
    name = "tests.fabric.openedx.receivers"
    label = "openedx_receivers"

    def ready(self) -> None:
        from tests.fabric.openedx.data import signals_and_data

        for signal, _ in signals_and_data():
            signal.connect(receiver, dispatch_uid=f"test-receiver-{signal.event_type}")
