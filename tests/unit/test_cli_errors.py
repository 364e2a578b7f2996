"""``manage.py events ...`` errors a person can act on: one line naming what is wrong and what to
check, an exit code (2: the broker, the database or an option; 1: the command's finding), no
traceback (``--traceback`` still shows it). The broker cases run the command as ``manage.py`` does
(``run_from_argv``) against a port nobody listens on, a listener that never answers, and an
unsupported scheme; ``test_cli_errors_manage.py`` runs a few as real processes."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version

import kombu.exceptions
import pytest
import redis.exceptions
from celery import Celery
from django.core.management import CommandError, call_command
from django.db.utils import OperationalError, ProgrammingError

from event_tasks.errors import EventValidationError, PublishError
from event_tasks.management import failures
from event_tasks.management.commands.events import Command
from event_tasks.models import DeadLetter
from event_tasks.send import publisher as publisher_module
from event_tasks.send.publisher import Publisher, not_utf8, send_event

TYPE = "org.openedx.learning.probe.created.v1"
BROKER_COMMANDS = {
    "declare": ["declare"],
    "topology": ["topology"],
    "topology verify": ["topology", "verify"],
    "status": ["status"],
    "trace": ["trace", "some-event-id"],
    "tail": ["tail", "--count", "1"],
    "send": ["send", TYPE, "--data", '{"n": 1}'],
    "deadletters replay": ["deadletters", "replay", "1"],
}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound to find it, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker(settings) -> Iterator[Callable[[str], Celery]]:
    """``broker(url)``: the events command's Celery app (``the_app()``) talks to ``url`` in this test."""
    settings.EVENT_TASKS_SERVICE = "prober"
    saved = list(publisher_module._apps)

    def use(url: str) -> Celery:
        app = Celery("cli-errors", broker=url, set_as_current=False)
        publisher_module.use_app(app)
        return app

    yield use
    publisher_module._apps[:] = saved


def run(capsys, *argv: str) -> tuple[int, str, str, float]:
    """``manage.py events <argv>`` in this process: (exit code, stdout, stderr, seconds)."""
    started = time.monotonic()
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "events", *argv])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    return exited.value.code, out, err, elapsed


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("CommandError: ")
    return lines[0]


@pytest.mark.parametrize("command", list(BROKER_COMMANDS))
def test_an_unreachable_redis_is_one_line_naming_it_without_its_password(broker, capsys, command):
    port = closed_port()
    broker(f"redis://:secret@127.0.0.1:{port}/0")
    code, out, err, elapsed = run(capsys, *BROKER_COMMANDS[command])
    line = one_line(err)
    assert code == 2
    assert f"The broker at redis://:**@127.0.0.1:{port}/0 is not reachable" in line
    assert "Connection refused" in line and "check that it is running" in line and "CELERY_BROKER_URL" in line
    assert "secret" not in out + err
    assert out == ""
    assert elapsed < 8  # one connection attempt (declare, tail and verify retried for 12 s before)


@pytest.mark.parametrize("command", list(BROKER_COMMANDS))
def test_an_unsupported_broker_is_one_line_not_a_name_error(broker, capsys, command):
    broker("kafka://x")
    code, out, err, _ = run(capsys, *BROKER_COMMANDS[command])
    line = one_line(err)
    assert code == 2
    assert "Unsupported broker 'kafka' in CELERY_BROKER_URL (kafka://x)" in line
    assert "Redis (redis://" in line and "RabbitMQ (amqp://" in line
    assert "NameError" not in err and out == ""


@pytest.mark.parametrize("command", ["declare", "status", "send"])
def test_an_unreachable_rabbitmq_is_one_line(broker, capsys, command):
    port = closed_port()
    broker(f"amqp://guest:secret@127.0.0.1:{port}//")
    code, out, err, elapsed = run(capsys, *BROKER_COMMANDS[command])
    line = one_line(err)
    assert code == 2
    assert f"The broker at amqp://guest:**@127.0.0.1:{port}// is not reachable" in line
    assert "secret" not in err and out == ""
    assert elapsed < 8


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_that_never_answers_is_reported_within_seconds(broker, capsys, scheme):
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        broker(f"{scheme}://127.0.0.1:{port}/" + ("0" if scheme == "redis" else "/"))
        code, _, err, elapsed = run(capsys, "status")
    line = one_line(err)
    assert code == 2 and "is not reachable" in line and "time" in line.lower()
    assert elapsed < 8  # the probe's 3 s, not the library's default of waiting for ever


def test_an_unknown_host_is_one_line(broker, capsys):
    broker("redis://no-such-host.invalid:6379/0")
    code, _, err, _ = run(capsys, "declare")
    assert code == 2 and "redis://no-such-host.invalid:6379/0 is not reachable" in one_line(err)


def test_traceback_still_shows_the_cause(broker, capsys):
    broker(f"redis://127.0.0.1:{closed_port()}/0")
    with pytest.raises(CommandError) as raised:
        Command().run_from_argv(["manage.py", "events", "--traceback", "declare"])
    assert raised.value.returncode == 2
    assert isinstance(raised.value.__cause__.__cause__, kombu.exceptions.OperationalError)


def test_version_is_the_installed_distributions(capsys):
    code, out, _, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"event-tasks {version('event-tasks')}"


# -- errors after the probe: the broker went away while the command ran ------------------------


def test_a_broker_error_raised_later_is_the_same_line():
    app = Celery("t", broker="redis://:pw@127.0.0.1:1/0", set_as_current=False)
    for exc in (
        kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        redis.exceptions.ConnectionError("Connection reset by peer"),
        PublishError(TYPE, "e1", redis.exceptions.TimeoutError("Timeout reading from socket")),
    ):
        error = failures.command_error(exc, app, on_broker=False)
        assert error is not None and error.returncode == 2
        assert str(error).startswith("The broker at redis://:**@127.0.0.1:1/0 is not reachable (")
    assert failures.command_error(ConnectionResetError("reset"), app, on_broker=True).returncode == 2
    assert (
        failures.command_error(BrokenPipeError("stdout closed"), app, on_broker=True) is None
    )  # a bug, not the broker
    assert failures.command_error(ConnectionResetError("reset"), app, on_broker=False) is None
    assert failures.command_error(ValueError("a bug"), app, on_broker=True) is None


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("no such table: event_tasks_deadletter"),
        ProgrammingError(
            'relation "event_tasks_deadletter" does not exist\nLINE 1: SELECT ... FROM "event_tasks_deadletter"'
        ),
        ProgrammingError("(1146, \"Table 'lms.event_tasks_deadletter' doesn't exist\")"),
    ],
)
def test_a_missing_table_says_migrate(exc):
    error = failures.command_error(exc, None, on_broker=False)
    assert error is not None and error.returncode == 2
    assert str(error).startswith("The fabric's tables are missing in database 'default' (")
    assert "no table event_tasks_deadletter): run manage.py migrate" in str(error)
    assert failures.command_error(OperationalError("database is locked"), None, on_broker=False) is None


# -- options no run can use -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["deadletters", "list", "--older-than", "-5"], "--older-than must be at least 0, not -5"),
        (["deadletters", "list", "--older-than", "nan"], "--older-than must be a finite number, not nan"),
        (["deadletters", "list", "--newer-than", "0"], "--newer-than must be more than 0, not 0"),
        (["deadletters", "list", "--older-than", "60", "--newer-than", "10"], "matches nothing"),
        (["deadletters", "list", "--limit", "0"], "--limit must be at least 1, not 0"),
        (["deadletters", "discard", "--all", "--reason", "nope"], "no reason 'nope'; the reasons are max_retries,"),
        (["status", "--watch", "0"], "--watch must be more than 0, not 0"),
        (["status", "--timeout", "-1"], "--timeout must be at least 0, not -1"),
        (["tail", "--count", "0"], "--count must be at least 1, not 0"),
        (["tail", "--lease", "-3"], "--lease must be more than 0, not -3"),
        (["relay", "--batch", "0"], "--batch must be at least 1, not 0"),
        (["relay", "--grace", "-1"], "--grace must be at least 0, not -1"),
        (["metrics", "--port", "70000"], "--port must be a TCP port (0 to 65535), not 70000"),
    ],
)
def test_impossible_options_are_refused_in_one_line(capsys, argv, says):
    code, out, err, _ = run(capsys, *argv)  # no database, no broker: refused before either
    assert code == 2 and says in one_line(err) and out == ""


# -- send: --data @FILE, --data -, --id; JSON that is not ----------------------------------------


@pytest.fixture
def memory_broker(broker) -> Celery:
    return broker("memory://")


def test_send_reads_a_payload_too_long_for_an_argument_from_a_file(memory_broker, tmp_path):
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"n": 1, "note": "x" * 200_000}), encoding="utf-8")  # over the 128 KiB argv limit
    out = io.StringIO()
    call_command("events", "send", TYPE, "--data", f"@{path}", "--id", "from-a-file", stdout=out)
    assert out.getvalue().strip() == "from-a-file"


def test_send_reads_the_payload_from_stdin(memory_broker, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"n": 2}'))
    out = io.StringIO()
    call_command("events", "send", TYPE, "--data", "-", stdout=out)
    assert len(out.getvalue().strip()) == 36  # a new UUID


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ('{"n": 1', "--data is not JSON: Expecting ',' delimiter"),
        ('{"n": NaN}', "--data is not JSON: NaN is not a JSON value"),
        ("@/nonexistent/payload.json", "--data @/nonexistent/payload.json: cannot read the payload: [Errno 2]"),
    ],
)
def test_send_refuses_a_payload_that_is_not_json(memory_broker, capsys, data, says):
    code, out, err, _ = run(capsys, "send", TYPE, "--data", data)
    assert code == 2 and says in one_line(err) and out == ""


# -- text that UTF-8 cannot encode ------------------------------------------------------------


def test_a_lone_surrogate_is_a_validation_error_naming_the_field(memory_broker):
    with pytest.raises(EventValidationError) as raised:
        send_event(TYPE, {"n": 1, "note": "\ud800"})
    assert raised.value.fields == ["note"]
    assert "cannot be encoded as UTF-8" in str(raised.value)
    str(raised.value).encode("utf-8")  # the message itself can be printed
    with pytest.raises(EventValidationError) as raised:
        send_event(TYPE, {"n": 1}, key="k\udc80")
    assert raised.value.fields == ["key"]


def test_send_of_a_lone_surrogate_is_one_line(memory_broker, capsys):
    code, _, err, _ = run(capsys, "send", TYPE, "--data", '{"n": 1, "note": "\\ud800"}')
    line = one_line(err)
    assert code == 1 and "nothing was published. Bad fields: note: text that cannot be encoded as UTF-8" in line


def test_not_utf8_names_nested_fields_and_keys_escaped():
    found = not_utf8({"ok": "é", "a": {"b": ["fine", "\udc80"]}, "m": {"\ud800k": 1}})
    assert set(found) == {"a", "m"}
    assert found["a"] == {"b": {"1": [publisher_module.NOT_UTF8]}}
    assert list(found["m"]) == ["\\ud800k"]
    assert not_utf8({"n": 1, "note": "fine"}) == {}


def test_prepare_refuses_before_anything_is_published(memory_broker):
    publisher = Publisher(memory_broker, "prober")
    with pytest.raises(EventValidationError):
        publisher.send(TYPE, {"n": 1, "note": "a\udfffb"})
    assert publisher.stats["published"] == 0


# -- dead letter ids that do not exist --------------------------------------------------------


@pytest.mark.django_db
def test_show_of_a_missing_id_says_so():
    with pytest.raises(CommandError) as raised:
        call_command("events", "deadletters", "show", "999999", "--service", "prober", stdout=io.StringIO())
    assert raised.value.returncode == 1
    assert str(raised.value) == "no dead letter with id 999999 in service prober"


@pytest.mark.django_db
def test_discard_acts_on_the_ids_that_exist_and_reports_the_others(settings):
    settings.EVENT_TASKS_SERVICE = "prober"
    letter = DeadLetter.objects.create(service="prober", reason="max_retries", detail="boom")
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("events", "deadletters", "discard", str(letter.pk), "999998", "999999", stdout=out)
    assert raised.value.returncode == 1
    assert str(raised.value) == "no dead letter with ids 999998, 999999 in service prober"
    assert "discarded 1 dead letter(s)" in out.getvalue()
    assert not DeadLetter.objects.filter(pk=letter.pk).exists()


@pytest.mark.django_db
def test_show_with_filters_names_them():
    letter = DeadLetter.objects.create(service="prober", reason="max_retries")
    with pytest.raises(CommandError) as raised:
        call_command(
            "events",
            "deadletters",
            "show",
            str(letter.pk),
            "--reason",
            "time_limit",
            "--service",
            "prober",
            stdout=io.StringIO(),
        )
    assert str(raised.value) == f"no dead letter with id {letter.pk} in service prober matching --reason time_limit"


@pytest.mark.django_db
def test_replay_of_a_missing_id_says_so(memory_broker):
    with pytest.raises(CommandError) as raised:
        call_command("events", "deadletters", "replay", "999999", stdout=io.StringIO())
    assert raised.value.returncode == 1 and "no dead letter with id 999999 in service prober" in str(raised.value)
