"""What a person can act on when an ``events`` command cannot do its work: one line, an exit code.

``commands/events.py`` calls these at its entry, once for every subcommand: a broker that is
unreachable or of an unsupported kind, and a database whose fabric tables were never migrated,
become one line naming the broker URL (its password hidden) or the database and what to do, and
exit 2 (``docs/operations.md``). ``--traceback`` still shows the exception behind the line.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

import amqp.exceptions
import kombu.exceptions
import redis.exceptions
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from ..brokers.topology import broker_kind, shown_url
from ..errors import (
    BrokerUnavailable,
    EventTasksError,
    PublishError,
    QueueMigrationRefused,
    QueueTypeMismatch,
    TablesMissing,
    UnsupportedBroker,
)

if TYPE_CHECKING:
    from celery import Celery
    from django.db.models import Model

#: exit code of a problem of the environment (broker, database), as opposed to 1: the command's finding
ENVIRONMENT = 2
#: subcommands that need the broker (deadletters: replay): probed first, in a few seconds (the
#: publisher's own retries, meant for a service's sends, would take longer on a silent broker)
BROKER_ACTIONS = frozenset(
    {"declare", "topology", "status", "trace", "tail", "send", "deadletters", "queues", "backfill", "archive"}
)
#: subcommands that use the broker on their own schedule, riding out its absence (relay, metrics):
#: its kind is checked first; its reachability is theirs to report
PUBLISH_ACTIONS = frozenset({"relay", "metrics"})
#: seconds the probe waits for the broker to connect and to answer
PROBE_TIMEOUT = 3.0

#: what the broker libraries raise when the broker cannot be reached (kombu wraps most of them in
#: its OperationalError; redis-py's and amqp's come through where a client is used directly)
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,  # AuthenticationError too
    redis.exceptions.TimeoutError,
    amqp.exceptions.ConnectionError,  # e.g. NotAllowed: no such virtual host
    amqp.exceptions.AccessRefused,  # a login refused (amqp files it under channel errors)
    amqp.exceptions.RecoverableConnectionError,
)
#: socket errors: the broker's only where the command talks to the broker (not a closed stdout)
SOCKET_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    socket.gaierror,
    TimeoutError,
)
_MISSING_TABLE = (
    re.compile(r"no such table: ([\w.]+)"),  # SQLite
    re.compile(r'relation "([^"]+)" does not exist'),  # PostgreSQL
    re.compile(r"Table '([^']+)' doesn't exist"),  # MySQL
)


def broker_url(app: Celery) -> str:
    return str(app.conf.broker_write_url or app.conf.broker_url or "")


def check_kind(app: Celery) -> None:
    """:class:`UnsupportedBroker` for a broker event-tasks does not run on (before kombu loads it)."""
    broker_kind(broker_url(app))


def needs_broker(action: str, options: Mapping[str, object]) -> bool:
    """Whether the subcommand cannot do anything without the broker (probed before it starts)."""
    return action in BROKER_ACTIONS and options.get("dl_action", "replay") == "replay"


def probe_broker(app: Celery, timeout: float = PROBE_TIMEOUT) -> None:
    """Connect to the app's broker once (each failover host once), bounded by ``timeout``;
    :class:`UnsupportedBroker` or :class:`BrokerUnavailable` when that fails."""
    url = broker_url(app)
    kind = broker_kind(url)  # before kombu imports a transport for an unsupported scheme
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout} if kind == "redis" else {}
    conn = app.connection_for_write(connect_timeout=timeout, transport_options=options)
    try:
        conn.ensure_connection(max_retries=max(0, len(conn.alt) - 1), interval_start=0, interval_step=0)
    except BROKER_ERRORS + SOCKET_ERRORS as exc:
        raise BrokerUnavailable(shown_url(url), _cause(exc)) from exc
    finally:
        conn.release()


def check_tables(model: type[Model], using: str) -> None:
    """:class:`TablesMissing` when ``model``'s table is not in database ``using`` (a long-running
    command that would otherwise retry a missing table forever, as if the database were down)."""
    table = model._meta.db_table
    connection = connections[using]
    if table not in connection.introspection.table_names():
        raise TablesMissing(using, str(connection.settings_dict.get("NAME", "")), table)


def command_error(exc: BaseException, app: Celery | None, *, on_broker: bool) -> CommandError | None:
    """The one line (a CommandError with its exit code) for an exception an ``events`` command
    raised, or ``None``: a bug, shown with its traceback. ``on_broker``: the command talks to the
    broker (a socket error is the broker's, not e.g. a closed pipe's)."""
    if isinstance(exc, (BrokerUnavailable, UnsupportedBroker, TablesMissing, QueueTypeMismatch, QueueMigrationRefused)):
        return CommandError(str(exc), returncode=ENVIRONMENT)
    if isinstance(exc, PublishError) and isinstance(exc.cause, BROKER_ERRORS + SOCKET_ERRORS):
        exc = exc.cause  # the broker is unreachable: say which, not which event failed
    elif isinstance(exc, EventTasksError):
        return CommandError(str(exc))
    broker_errors = BROKER_ERRORS + SOCKET_ERRORS if on_broker else BROKER_ERRORS
    if isinstance(exc, broker_errors):
        url = shown_url(broker_url(app)) if app is not None else "CELERY_BROKER_URL"
        return CommandError(str(BrokerUnavailable(url, _cause(exc))), returncode=ENVIRONMENT)
    if isinstance(exc, DatabaseError):
        missing = tables_missing(exc)
        if missing is not None:
            return CommandError(str(missing), returncode=ENVIRONMENT)
    return None


def tables_missing(exc: DatabaseError) -> TablesMissing | None:
    """The database and table a "no such table" error (SQLite, PostgreSQL, MySQL) is about, or None."""
    for pattern in _MISSING_TABLE:
        found = pattern.search(str(exc))
        if found:
            table = found.group(1).rsplit(".", 1)[-1]
            break
    else:
        return None
    opened = connections.all(initialized_only=True)
    alias = opened[0].alias if opened else DEFAULT_DB_ALIAS
    for connection in opened:  # the error does not say which database: the one that lacks the table
        try:
            if table not in connection.introspection.table_names():
                alias = connection.alias
                break
        except Exception:  # noqa: BLE001 - naming the database is best effort: the missing table is the error
            continue
    return TablesMissing(alias, str(connections[alias].settings_dict.get("NAME", "")), table)


def _cause(exc: BaseException) -> str:
    """The library's own words (kombu's OperationalError repeats its cause's), on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    # kombu's Sentinel errors append the repr of every sentinel client they tried: keep the words
    text = text.split(" : <redis.", 1)[0]
    return text.rstrip(".")
