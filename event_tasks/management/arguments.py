"""The arguments of ``manage.py events``: one subcommand per operator action (``commands/events.py``)."""

from __future__ import annotations

import json
import math
import sys
from argparse import RawDescriptionHelpFormatter
from collections.abc import Mapping
from typing import Any

from django.core.management.base import CommandError, CommandParser

from .broker_users import add_parser as add_broker_users_parser
from .keys import add_parser as add_keys_parser
from .queues import MIGRATE_DESCRIPTION, MIGRATE_HELP


def add_arguments(parser: CommandParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    declare = sub.add_parser("declare", help="declare queues and bindings (run at deploy)")
    declare.add_argument("--service", action="append", help="only these services (repeatable)")
    cat = sub.add_parser("catalog", help="list event types")
    cat.add_argument("--json", action="store_true")
    topo = sub.add_parser("topology", help="show subscriptions, or verify them against the code (exit 1 on drift)")
    topo.add_argument(
        "topology_action",
        nargs="?",
        choices=["show", "verify"],
        default="show",
        help="show: the bindings on the broker (default); verify: compare them with the handlers",
    )
    topo.add_argument("--service", action="append", dest="services", help="verify only these services")
    topo.add_argument("--prune", action="store_true", help="verify: remove stale bindings, then verify again")
    topo.add_argument(
        "--ignore-consumers",
        action="store_true",
        help="verify: a queue without consumers is not drift (a release step before workers start)",
    )
    topo.add_argument("--json", action="store_true", help="print JSON")
    status = sub.add_parser("status", help="per service: queue depth, in flight, workers, dead letters, outbox")
    status.add_argument("--service", action="append", dest="services", help="only these services (repeatable)")
    status.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="print again every SECONDS (default 2) until Ctrl-C",
    )
    status.add_argument("--no-workers", action="store_true", help="do not ask the workers (no remote control wait)")
    status.add_argument("--timeout", type=float, help="seconds to wait for workers' replies")
    status.add_argument("--json", action="store_true", help="print JSON (the data of event_tasks.ops.status.collect)")
    trace = sub.add_parser("trace", help="where one event went: outbox, bindings, each service's deliveries")
    trace.add_argument("event_id", help="the event's id (the envelope id; a task id is <event id>:<service>)")
    trace.add_argument("--service", action="append", dest="services", help="only these services (repeatable)")
    trace.add_argument("--json", action="store_true", help="print JSON")
    tail = sub.add_parser("tail", help="print events live from a temporary queue (removed on exit)")
    tail.add_argument("--type", dest="pattern", default="#", help="event type or topic pattern (default: #, all)")
    tail.add_argument("--count", type=int, help="exit after this many events")
    tail.add_argument(
        "--lease", type=float, default=30.0, help="Redis: seconds a killed tail's binding outlives it (default 30)"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    send = sub.add_parser("send", help="send one event as EVENT_TASKS_SERVICE")
    send.add_argument("event_type")
    send.add_argument(
        "--data", required=True, help="the payload as JSON, @FILE (a file holding it) or - (read from stdin)"
    )
    send.add_argument("--key")
    send.add_argument("--id", dest="event_id", help="the event's id (send_event(id=...); default: a new UUID)")
    relay = sub.add_parser("relay", help="publish committed outbox events (runs until stopped)")
    relay.add_argument("--once", action="store_true", help="publish what is pending, then exit")
    relay.add_argument("--grace", type=float, help="seconds to leave fresh rows to the on-commit publish")
    relay.add_argument("--batch", type=int, default=200, help="rows claimed per round")
    prune = sub.add_parser("prune", help="delete rows past their retention (EVENT_TASKS_KEEP_*; run on a schedule)")
    prune.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    schema = sub.add_parser("schema", help="record the catalog's shape, or check the code against it")
    schema.add_argument("schema_action", choices=["snapshot", "check", "export"])
    schema.add_argument(
        "--file", default=None, help="the snapshot (default: catalog.json in the catalog package's folder)"
    )
    schema.add_argument(
        "--out",
        default="schema-export",
        help="export: folder for schemas/<type>.json and asyncapi.json (default: schema-export)",
    )
    dl = sub.add_parser("deadletters", help="list, show, replay or discard this service's dead letters")
    dl.add_argument("dl_action", choices=["list", "show", "replay", "discard"])
    dl.add_argument("ids", nargs="*", type=int, help="dead letter ids (show/replay/discard)")
    dl.add_argument("--service")
    dl.add_argument("--type", dest="event_type")
    dl.add_argument("--reason")
    dl.add_argument("--older-than", type=float, metavar="SECONDS")
    dl.add_argument("--newer-than", type=float, metavar="SECONDS")
    dl.add_argument("--all", action="store_true", help="replay/discard every match of the filters")
    dl.add_argument("--limit", type=int, default=50)
    add_keys_parser(sub)  # events keys generate|public (signed envelopes: management/keys.py)
    add_broker_users_parser(sub)  # events broker-users (least privilege: management/broker_users.py)
    backfill = sub.add_parser("backfill", help="put the archive's events since TIME into one service's queue")
    backfill.add_argument("--service", required=True, dest="backfill_service", help="the service whose queue gets them")
    backfill.add_argument("--since", required=True, help="ISO 8601 (2026-12-03T10:00:00Z) or an age (30m, 2h, 7d)")
    backfill.add_argument("--type", dest="pattern", help="only types matching this type or topic pattern")
    backfill.add_argument("--rate", default="500/s", help="events per second put into the queue (default 500/s)")
    backfill.add_argument("--dry-run", action="store_true", help="count what would be put, put nothing")
    archive = sub.add_parser("archive", help="the archive of sent events (EVENT_TASKS_ARCHIVE_DAYS)")
    archive.add_argument("archive_action", choices=["status"])
    archive.add_argument("--json", action="store_true", help="print JSON")
    queues = sub.add_parser("queues", help="RabbitMQ: move a service's queue to another type (classic, quorum)")
    queues_sub = queues.add_subparsers(dest="queues_action", required=True)
    migrate = queues_sub.add_parser(
        "migrate", help=MIGRATE_HELP, description=MIGRATE_DESCRIPTION, formatter_class=RawDescriptionHelpFormatter
    )
    migrate.add_argument("--service", required=True, help="the service whose queue events.<service> moves")
    migrate.add_argument("--to", dest="queue_type", required=True, choices=["classic", "quorum"], help="the new type")
    metrics = sub.add_parser(
        "metrics",
        help="serve Prometheus metrics at /metrics: queue depth, dead letters "
        "by reason, outbox backlog, duplicates (runs until stopped)",
    )
    metrics.add_argument("--port", type=int, default=9808, help="0: any free port (default 9808)")
    metrics.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    metrics.add_argument(
        "--service",
        action="append",
        dest="metric_services",
        metavar="SERVICE",
        help="only these services (repeatable; default: every service this process knows)",
    )
    metrics.add_argument(
        "--workers",
        action="store_true",
        help="also count each service's workers (Celery remote control on every scrape)",
    )


def check_options(action: str, options: Mapping[str, object]) -> None:
    """Refuse values no run can use, in one line (exit 2, as argparse refuses a malformed one)."""
    at_least: dict[str, dict[str, tuple[float, bool]]] = {  # option: (bound, bound itself allowed)
        "status": {"watch": (0, False), "timeout": (0, True)},
        "tail": {"count": (1, True), "lease": (0, False)},
        "relay": {"grace": (0, True), "batch": (1, True)},
        "deadletters": {"older_than": (0, True), "newer_than": (0, False), "limit": (1, True)},
        "metrics": {"port": (0, True)},
    }
    for name, (bound, inclusive) in at_least.get(action, {}).items():
        value = options.get(name)
        if not isinstance(value, (int, float)):
            continue
        flag = "--" + name.replace("_", "-")
        if not math.isfinite(value):
            raise CommandError(f"events {action}: {flag} must be a finite number, not {value:g}", returncode=2)
        if value < bound or (value == bound and not inclusive):
            than = f"at least {bound:g}" if inclusive else f"more than {bound:g}"
            raise CommandError(f"events {action}: {flag} must be {than}, not {value:g}", returncode=2)
    port = options.get("port")
    if action == "metrics" and isinstance(port, int) and port > 65535:
        raise CommandError(f"events metrics: --port must be a TCP port (0 to 65535), not {port}", returncode=2)
    if action == "deadletters":
        _check_deadletter_filters(options)
    if action == "backfill":  # before the broker is asked anything
        from ..ops.backfill import parse_rate, parse_since

        parse_since(str(options.get("since"))), parse_rate(str(options.get("rate", "500/s")))


def _check_deadletter_filters(options: Mapping[str, object]) -> None:
    from event_tasks.models import DeadLetter

    older, newer = options.get("older_than"), options.get("newer_than")
    if isinstance(older, (int, float)) and isinstance(newer, (int, float)) and newer <= older:
        raise CommandError(
            f"events deadletters: --newer-than {newer:g} with --older-than {older:g} matches nothing: a dead "
            f"letter newer than {newer:g} s is not older than {older:g} s (--newer-than must be the larger age)",
            returncode=2,
        )
    reason = options.get("reason")
    if reason is not None and reason not in DeadLetter.Reason.values:
        raise CommandError(
            f"events deadletters: no reason {reason!r}; the reasons are {', '.join(DeadLetter.Reason.values)}",
            returncode=2,
        )


def read_payload(data: str) -> Any:  # Any: JSON as parsed; send_event validates it against the schema
    """``--data``: JSON, ``@FILE`` (a file holding it) or ``-`` (stdin: no argument-length limit);
    a payload that cannot be read or is not JSON is one line, exit 2."""
    where = "--data"
    try:
        if data == "-":
            where, data = "--data - (stdin)", sys.stdin.read()
        elif data.startswith("@"):
            where = f"--data {data}"
            with open(data[1:], encoding="utf-8") as file:
                data = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{where}: cannot read the payload: {exc}", returncode=2) from exc

    def not_json(constant: str) -> object:
        raise ValueError(f"{constant} is not a JSON value")

    try:
        return json.loads(data, parse_constant=not_json)
    except ValueError as exc:
        raise CommandError(f"{where} is not JSON: {exc}", returncode=2) from exc
