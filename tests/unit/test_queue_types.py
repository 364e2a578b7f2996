"""A queue whose type differs from the settings, without a broker: RabbitMQ's refusals read back
into the live type and arguments, the one-line errors, the ``events queues migrate`` command's
arguments, help and refusals, and what makes two copies of one message twins. The broker side
(real refusals, real migrations) is ``tests/integration/test_queue_migration.py``."""

from __future__ import annotations

import logging
import pickle
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from amqp import Message
from celery import Celery
from django.core.management import CommandError

from event_tasks.errors import QueueMigrationRefused, QueueTypeMismatch
from event_tasks.management import failures
from event_tasks.management.commands.events import Command
from event_tasks.ops.live_queues import NONE, parse_refusal, refuse_mismatched_at_start, shown
from event_tasks.ops.migrate_queues import identity
from event_tasks.send import publisher as publisher_module

VHOST = "for queue 'events.alpha' in vhost 'v'"


@pytest.mark.parametrize(
    ("refusal", "like", "read"),
    [
        # RabbitMQ 3.10's words, as a 406 PRECONDITION_FAILED carries them
        (f"inequivalent arg 'x-queue-type' {VHOST}: received the value 'quorum' of type 'longstr' but current is none", "quorum", ("x-queue-type", NONE)),
        (f"inequivalent arg 'x-dead-letter-exchange' {VHOST}: received none but current is the value '' of type 'longstr'", None, ("x-dead-letter-exchange", "")),
        (f"inequivalent arg 'x-delivery-limit' {VHOST}: received '20' but current is '100'", 20, ("x-delivery-limit", 100)),
        (f"inequivalent arg 'x-delivery-limit' {VHOST}: received none but current is the value '100' of type 'signedint'", None, ("x-delivery-limit", 100)),
        (f"inequivalent arg 'x-dead-letter-routing-key' {VHOST}: received 'zz' but current is 'events.alpha.parked'", "zz", ("x-dead-letter-routing-key", "events.alpha.parked")),
        (f"inequivalent arg 'durable' {VHOST}: received 'true' but current is 'false'", True, ("durable", False)),
        ("PRECONDITION_FAILED - " f"inequivalent arg 'x-queue-type' {VHOST}: received the value 'classic' of type 'longstr' but current is the value 'quorum' of type 'longstr'", "classic", ("x-queue-type", "quorum")),
    ],
)  # fmt: skip
def test_a_refusal_names_the_argument_and_its_live_value(refusal, like, read):
    assert parse_refusal(refusal, like=like) == read


def test_another_refusal_is_not_read_as_a_difference():
    assert parse_refusal("invalid property 'auto-delete' for queue 'q' in vhost '/'") is None


def test_values_are_shown_as_a_person_reads_them():
    assert [shown(v) for v in (NONE, "", "quorum", 100, True)] == ["none", "''", "'quorum'", "100", "true"]


def test_a_type_mismatch_names_the_queue_both_types_and_the_command():
    error = QueueTypeMismatch("events.alpha", "alpha", "classic", "quorum")
    text = str(error)
    assert "RabbitMQ's queue events.alpha is a classic queue, but EVENT_TASKS_QUEUE_TYPE declares it quorum" in text
    assert "stop alpha's workers and run `manage.py events queues migrate --service alpha --to quorum`" in text
    assert "or set EVENT_TASKS_QUEUE_TYPE = 'classic'" in text and "\n" not in text
    assert str(pickle.loads(pickle.dumps(error))) == text  # Celery copies errors across processes


def test_an_argument_mismatch_names_each_argument():
    error = QueueTypeMismatch("events.alpha", "alpha", "quorum", "quorum", (("x-delivery-limit", "100", "20"),))
    assert "is a quorum queue with x-delivery-limit 100 (declared: 20); a queue's arguments cannot change" in str(error)
    assert "--to quorum`" in str(error) and "set EVENT_TASKS_QUEUE_TYPE" not in str(error)


@pytest.mark.parametrize(
    "error",
    [QueueTypeMismatch("events.alpha", "alpha", "classic", "quorum"), QueueMigrationRefused("events.alpha", "x")],
)
def test_the_commands_exit_2_on_them(error):
    found = failures.command_error(error, None, on_broker=True)
    assert isinstance(found, CommandError) and found.returncode == 2 and str(found) == str(error)


def message(body: bytes, **headers: object) -> Message:
    return Message(body, content_type="application/json", delivery_mode=2, application_headers=headers)


def test_twins_are_the_copies_of_one_publish_whatever_the_broker_added():
    one = message(b'[[{"id": "e1"}, {}], {}, {}]', id="e1", retries=0)
    assert identity(one) == identity(
        message(b'[[{"id": "e1"}, {}], {}, {}]', id="e1", retries=0, **{"x-delivery-count": 2})
    )
    assert identity(one) != identity(message(b'[[{"id": "e2"}, {}], {}, {}]', id="e1", retries=0))
    assert identity(one) != identity(message(b'[[{"id": "e1"}, {}], {}, {}]', id="e1", retries=1))  # a retry


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker(settings) -> Iterator[Callable[[str], Celery]]:
    settings.EVENT_TASKS_SERVICE = "prober"
    saved = list(publisher_module._apps)

    def use(url: str) -> Celery:
        app = Celery("queue-types", broker=url, set_as_current=False)
        publisher_module.use_app(app)
        return app

    yield use
    publisher_module._apps[:] = saved


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "events", *argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_migrate_needs_a_service_and_a_type(broker, capsys):
    broker("memory://")
    code, _, err = run(capsys, "queues", "migrate", "--service", "alpha")
    assert code == 2 and "--to" in err
    code, _, err = run(capsys, "queues", "migrate", "--service", "alpha", "--to", "stream")
    assert code == 2 and "invalid choice: 'stream'" in err


def test_migrate_help_says_the_procedure(broker, capsys):
    code, out, _ = run(capsys, "queues", "migrate", "--help")
    assert code == 0
    for step in ("stop the service's workers", "events queues migrate --service S --to quorum", "set EVENT_TASKS_QUEUE_TYPE", "start the service's workers", "docs/migrating-queues.md"):  # fmt: skip
        assert step in " ".join(out.split()), out


def test_migrate_on_an_unreachable_rabbitmq_is_one_line(broker, capsys):
    port = closed_port()
    broker(f"amqp://guest:secret@127.0.0.1:{port}//")
    code, out, err = run(capsys, "queues", "migrate", "--service", "alpha", "--to", "quorum")
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"The broker at amqp://guest:**@127.0.0.1:{port}// is not reachable" in err.strip()


def test_migrate_on_another_broker_than_rabbitmq_is_one_line(broker, capsys):
    broker("memory://")
    code, _, err = run(capsys, "queues", "migrate", "--service", "alpha", "--to", "quorum")
    assert code == 2 and "cannot migrate events.alpha: Redis has one kind of queue" in err


def test_a_starting_worker_leaves_a_broker_that_does_not_answer_yet_to_celery(caplog):
    app = Celery("queue-types", broker=f"amqp://guest:guest@127.0.0.1:{closed_port()}//", set_as_current=False)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="event_tasks.ops.live_queues"):
        refuse_mismatched_at_start(app, [])
    assert time.monotonic() - started < 8
    assert "the type of the event queue was not checked" in caplog.text
    refuse_mismatched_at_start(Celery("memory", broker="memory://", set_as_current=False), [])  # no broker to ask
