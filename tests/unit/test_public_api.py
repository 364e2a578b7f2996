"""The public surface is small and pinned (docs/architecture.md, "Public API")."""

import configparser
import inspect
from pathlib import Path

import event_tasks
from event_tasks import errors


def test_all_is_pinned():
    assert event_tasks.__all__ == ["Event", "consumer", "send_event", "send_events"]


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    assert "__version__" not in event_tasks.__all__
    assert isinstance(event_tasks.__version__, str) and event_tasks.__version__
    assert event_tasks.__version__ == version("event-tasks")
    # and the installed metadata is this tree's (`make` reinstalls when setup.cfg changes)
    cfg = configparser.ConfigParser()
    cfg.read(Path(event_tasks.__file__).parent.parent / "setup.cfg")
    assert event_tasks.__version__ == cfg["metadata"]["version"]


def test_send_event_signature():
    sig = inspect.signature(event_tasks.send_event)
    assert list(sig.parameters) == ["event_type", "data", "key", "id"]
    assert sig.parameters["key"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["id"].kind is inspect.Parameter.KEYWORD_ONLY


def test_send_events_signature():
    assert list(inspect.signature(event_tasks.send_events).parameters) == ["items"]


def test_consumer_options_are_keyword_only():
    params = inspect.signature(event_tasks.consumer).parameters
    assert list(params) == [
        "event_type_or_pattern",
        "name",
        "deduplicate",
        "max_retries",
        "retry_for",
        "dont_retry",
        "time_limit",
        "batch",
        "batch_wait",
        "ordered",
    ]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n != "event_type_or_pattern")


def test_every_error_is_an_event_tasks_error():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) >= 8
    assert all(issubclass(c, errors.EventTasksError) for c in classes)


def test_event_is_frozen():
    from event_tasks.testing import make_event

    ev = make_event("org.openedx.learning.probe.created.v1", {"n": 1})
    try:
        ev.type = "x"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("Event must be frozen")
    try:
        ev.data["n"] = 2  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("Event.data must be read-only")
