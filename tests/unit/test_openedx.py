"""event_tasks.openedx at unit level: every openedx-events signal it can carry round-trips.

For each signal openedx-events 10.5 can serialize (``schema.serializable_signals``), hypothesis
generates data from the signal's attrs classes; the data goes through the backend's producer
(``EVENT_BUS_PRODUCER``), ``send_event``'s validation and envelope into a task body, back through
the worker's decoding (``delivery.read_event``) and the re-emitting handler, to a receiver of the
real signal, which must get equal data and metadata. Delivery through real brokers and workers:
tests/integration/test_openedx.py.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import subprocess
import sys
from typing import Any, get_args, get_origin

import attr
import pytest
from ccx_keys.locator import CCXLocator
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from opaque_keys.edx.keys import CourseKey, UsageKey
from opaque_keys.edx.locator import (
    LibraryCollectionLocator,
    LibraryContainerLocator,
    LibraryLocatorV2,
    LibraryUsageLocatorV2,
)
from openedx_events.event_bus.avro.deserializer import deserialize_bytes_to_event_data
from openedx_events.event_bus.avro.serializer import serialize_event_data_to_bytes
from openedx_events.tooling import KNOWN_UNSERIALIZABLE_SIGNALS, OpenEdxPublicSignal, load_all_signals

from event_tasks import catalog
from event_tasks.errors import ConfigurationError, EventValidationError, OpenedxEventsMissing
from event_tasks.openedx import EventTasksConsumer, create_producer
from event_tasks.openedx.codec import to_payload
from event_tasks.openedx.handlers import reemit
from event_tasks.openedx.schema import annotations, serializable_signals
from event_tasks.testing import capture_events

OPENEDX_CATALOG = "event_tasks.openedx.catalog"
SIGNALS = serializable_signals()
UTC = dt.UTC

# -- data generated from the attrs field types -------------------------------------------------
word = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)
KEYS = {
    CourseKey: st.builds(lambda o, c, r: CourseKey.from_string(f"course-v1:{o}+{c}+{r}"), word, word, word),
    CCXLocator: st.builds(
        lambda o, c, r, n: CCXLocator.from_string(f"ccx-v1:{o}+{c}+{r}+ccx@{n}"), word, word, word, st.integers(1, 999)
    ),
    UsageKey: st.builds(
        lambda o, c, r, b: UsageKey.from_string(f"block-v1:{o}+{c}+{r}+type@problem+block@{b}"), word, word, word, word
    ),
    LibraryLocatorV2: st.builds(lambda o, s: LibraryLocatorV2.from_string(f"lib:{o}:{s}"), word, word),
    LibraryUsageLocatorV2: st.builds(
        lambda o, s, b: LibraryUsageLocatorV2.from_string(f"lb:{o}:{s}:problem:{b}"), word, word, word
    ),
    LibraryCollectionLocator: st.builds(
        lambda o, s, k: LibraryCollectionLocator.from_string(f"lib-collection:{o}:{s}:{k}"), word, word, word
    ),
    LibraryContainerLocator: st.builds(
        lambda o, s, k: LibraryContainerLocator.from_string(f"lct:{o}:{s}:unit:{k}"), word, word, word
    ),
}
SIMPLE = {
    str: st.text(max_size=12),
    int: st.integers(-(2**63), 2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
    dt.datetime: st.datetimes(timezones=st.none() | st.just(UTC)),
    __import__("uuid").UUID: st.uuids(),
}


def values(data_type: Any) -> st.SearchStrategy:
    """Values of an openedx-events data type (what its serializer accepts)."""
    if data_type in KEYS:
        return KEYS[data_type]
    if data_type in SIMPLE:
        return SIMPLE[data_type]
    if get_origin(data_type) is list:
        return st.lists(values(get_args(data_type)[0]), max_size=3)
    if get_origin(data_type) is dict:
        key, value = get_args(data_type)
        return st.dictionaries(values(key), values(value), max_size=3)
    if hasattr(data_type, "__attrs_attrs__"):
        arguments = {}
        for a in attr.fields(data_type):
            if not a.init:
                continue
            strategy = values(a.type)
            arguments[getattr(a, "alias", None) or a.name.lstrip("_")] = (
                st.none() | strategy if a.default is None else strategy
            )
        return st.builds(data_type, **arguments)
    raise AssertionError(f"no generator for {data_type!r}: add one (the backend's schema supports it)")


# -- the openedx catalog, isolated from the demo catalog (both define some of the same names) ---
@pytest.fixture(scope="module")
def openedx_registry():
    registry: dict[str, catalog.EventType] = {}
    saved = catalog._registry
    catalog._registry = registry
    try:
        module = sys.modules.get(f"{OPENEDX_CATALOG}.signals")
        if module is None:
            catalog.load(OPENEDX_CATALOG)
        else:
            importlib.reload(module)
    finally:
        catalog._registry = saved
    return registry


@pytest.fixture()
def openedx_catalog(openedx_registry, monkeypatch, settings):
    monkeypatch.setattr(catalog, "_registry", openedx_registry)
    monkeypatch.setattr(catalog, "_loaded_from", {OPENEDX_CATALOG})
    settings.EVENT_TASKS_SCHEMAS_PACKAGE = OPENEDX_CATALOG
    from event_tasks.conf import settings as fabric_settings

    fabric_settings.cache_clear()
    yield openedx_registry
    fabric_settings.cache_clear()


class Received:
    """A receiver connected to one signal for the duration of a test."""

    def __init__(self, signal: OpenEdxPublicSignal, raises: BaseException | None = None) -> None:
        self.signal = signal
        self.raises = raises
        self.calls: list[dict[str, Any]] = []

        def receiver(sender: Any = None, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            self.calls.append(kwargs)
            if self.raises is not None:
                raise self.raises

        self.receiver = receiver

    def __enter__(self) -> Received:
        self.signal.connect(self.receiver, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.signal.disconnect(self.receiver)


def through_the_fabric(
    signal: OpenEdxPublicSignal, data: dict[str, Any], metadata: Any, key_field: str | None
) -> tuple[Any, Any]:
    """Produce with the backend, decode the task body as a worker does, re-emit: (event, task args)."""
    from event_tasks.consume.delivery import read_event
    from event_tasks.send import publisher

    with capture_events(service="lms") as captured:
        create_producer().send(
            signal=signal, topic="some-topic", event_key_field=key_field or "", event_data=data, event_metadata=metadata
        )
        bodies = publisher.default_publisher().transport.bodies
    assert len(captured) == 1 and len(bodies) == 1
    args, kwargs, _ = json.loads(bodies[0][1])
    event = read_event(signal.event_type, tuple(args), kwargs)
    return event, args


def test_every_serializable_signal_is_covered():
    load_all_signals()
    every = {s.event_type for s in OpenEdxPublicSignal.all_events()}
    covered = {s.event_type for s in SIGNALS}
    assert len(covered) >= 60
    assert every - covered == set(KNOWN_UNSERIALIZABLE_SIGNALS) & every  # nothing else left out


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda s: s.event_type)
def test_signal_round_trips(signal, openedx_catalog):
    key_field = annotations(signal.event_type).get("event_key_field")

    @hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        data=st.fixed_dictionaries({k: values(t) for k, t in signal.init_data.items()}),
        time=st.datetimes(min_value=dt.datetime(2000, 1, 1), timezones=st.just(UTC)),
    )
    def round_trip(data, time):
        metadata = signal.generate_signal_metadata(time=time)
        event, args = through_the_fabric(signal, data, metadata, key_field)
        envelope, payload = args
        assert envelope["id"] == str(metadata.id) and envelope["type"] == signal.event_type
        assert payload == json.loads(json.dumps(to_payload(signal, data, metadata)))
        with Received(signal) as receiver:
            reemit(event)
        assert len(receiver.calls) == 1
        got = receiver.calls[0]
        assert got.pop("metadata") == metadata
        assert got.pop("from_event_bus") is True
        # What openedx-events' own Avro bytes round trip gives (what the Redis and Kafka buses deliver):
        # equal to ``data`` except that its deserializer turns a falsy value of a ``default=None``
        # attribute (False, 0, "") into None (docs/openedx.md).
        assert got == deserialize_bytes_to_event_data(serialize_event_data_to_bytes(data, signal), signal)

    round_trip()


def test_the_key_is_the_event_key_field(openedx_catalog):
    from openedx_events.learning.signals import CERTIFICATE_CREATED

    data = {"certificate": _certificate()}
    event, _ = through_the_fabric(
        CERTIFICATE_CREATED, data, CERTIFICATE_CREATED.generate_signal_metadata(), "certificate.course.course_key"
    )
    assert event.key == "course-v1:edX+DemoX+2026"


def test_an_invalid_payload_is_refused_before_anything_is_sent(openedx_catalog):
    from openedx_events.learning.signals import CERTIFICATE_CREATED

    payload = to_payload(
        CERTIFICATE_CREATED, {"certificate": _certificate()}, CERTIFICATE_CREATED.generate_signal_metadata()
    )
    payload["certificate"]["course"]["course_key"] = "not a course key"
    payload["metadata"]["event_type"] = "org.openedx.learning.certificate.revoked.v1"
    with capture_events(service="lms") as captured, pytest.raises(EventValidationError) as caught:
        from event_tasks import send_event

        send_event(CERTIFICATE_CREATED.event_type, payload)
    assert len(captured) == 0
    assert set(caught.value.errors) == {"certificate", "metadata"}
    assert "CourseKey" in caught.value.describe() and "event_type" in caught.value.describe()


def test_the_producer_logs_and_raises_what_send_event_refuses(openedx_catalog, caplog):
    import attr as attrs_lib
    from openedx_events.learning.signals import CERTIFICATE_CREATED

    broken = attrs_lib.evolve(_certificate(), grade=92)  # not a str: attrs does not check, the schema does
    metadata = CERTIFICATE_CREATED.generate_signal_metadata()
    with capture_events(service="lms") as captured, pytest.raises(EventValidationError, match="grade"):
        create_producer().send(
            signal=CERTIFICATE_CREATED,
            topic="t",
            event_key_field="",
            event_data={"certificate": broken},
            event_metadata=metadata,
        )
    assert len(captured) == 0
    assert f"could not send {CERTIFICATE_CREATED.event_type} (id {metadata.id}" in caplog.text


def test_a_raising_receiver_makes_the_handler_raise(openedx_catalog):
    from openedx_events.learning.signals import CERTIFICATE_CREATED

    data = {"certificate": _certificate()}
    event, _ = through_the_fabric(CERTIFICATE_CREATED, data, CERTIFICATE_CREATED.generate_signal_metadata(), None)
    with (
        Received(CERTIFICATE_CREATED) as ok,
        Received(CERTIFICATE_CREATED, raises=KeyError("boom")),
        Received(CERTIFICATE_CREATED, raises=ValueError("bang")),
        pytest.raises(KeyError) as caught,
    ):
        reemit(event)
    assert len(ok.calls) == 1  # every receiver ran
    assert any("ValueError('bang')" in note for note in caught.value.__notes__)


def test_the_group_is_the_consuming_service(settings):
    settings.EVENT_TASKS_SERVICE = "credentials"
    settings.EVENT_TASKS_OPENEDX_SIGNALS = ["org.openedx.learning.certificate.#"]
    from event_tasks.conf import settings as fabric_settings

    fabric_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="consume_events -g credentials"):
            EventTasksConsumer(topic="learning-certificate-lifecycle", group_id="credentials-service").worker_argv()
        argv = EventTasksConsumer(
            topic="learning-certificate-lifecycle",
            group_id="credentials",
            check_backlog=True,
            concurrency=2,
            queues="credentials.work",
        ).worker_argv()
        assert argv[-2:] == ["-Q", "events.credentials,credentials.work"]
        assert argv[argv.index("-c") + 1] == "2" and "check_backlog" not in " ".join(argv)
        assert fabric_settings().openedx_signals == ("org.openedx.learning.certificate.#",)
    finally:
        fabric_settings.cache_clear()


def test_event_tasks_imports_without_openedx_events():
    code = (
        "import sys; sys.modules['openedx_events'] = None\n"
        "import event_tasks, event_tasks.app, event_tasks.send.publisher\n"
        "from event_tasks.errors import OpenedxEventsMissing\n"
        "try:\n    import event_tasks.openedx\nexcept OpenedxEventsMissing as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'event-tasks[openedx]'" in out.stdout
    assert issubclass(OpenedxEventsMissing, ConfigurationError)


def _certificate():
    from bench.payload import openedx_certificate

    return openedx_certificate(1)


def test_events_catalog_and_the_schema_snapshot_cover_every_signal(tmp_path):
    import os

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.fabric.openedx.settings",
        "EVENT_TASKS_CONSUMERS_PACKAGE": "tests.fabric.openedx",
        "EVENT_TASKS_SCHEMAS_PACKAGE": OPENEDX_CATALOG,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'tooling.sqlite3'}",
    }
    env.pop("EVENT_TASKS_SERVICE", None)
    snapshot = tmp_path / "catalog.json"
    for args in (["catalog"], ["schema", "snapshot", "--file", str(snapshot)]):
        out = subprocess.run(
            [sys.executable, "manage.py", "events", *args], capture_output=True, text=True, timeout=120, env=env
        )
        assert out.returncode == 0, out.stderr[-3000:]
        if args == ["catalog"]:
            listed = out.stdout
    types = {s.event_type for s in SIGNALS}
    assert all(t in listed for t in types)
    shapes = json.loads(snapshot.read_text())
    assert set(shapes) == types
    course = shapes["org.openedx.learning.certificate.created.v1"]["fields"]["certificate"]["fields"]["course"]
    assert course["fields"]["course_key"] == {"type": "String", "required": True}
    assert shapes["org.openedx.learning.certificate.created.v1"]["fields"]["metadata"]["required"] is True
