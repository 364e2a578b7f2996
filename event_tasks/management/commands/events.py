"""``python manage.py events <command>``: the fabric's operator commands.

* ``declare``   declare this service's queue and subscriptions (Procfile ``release:``); in a tooling
                process that sees several services' handlers (a monorepo), every one of them
* ``catalog``   list event types with owner, consumers and description
* ``topology``  show the live subscription table; ``topology verify [--prune]`` compares it with the
                handlers and exits 1 on drift (``topologycheck``)
* ``status``    per service: queue depth, in flight, workers, dead letters, outbox (``status``)
* ``trace``     where one event went (``trace``)
* ``tail``      print events live from a temporary queue (``tail``)
* ``send``      send one event as this service (``EVENT_TASKS_SERVICE``)
* ``relay``     publish this service's outbox (a Procfile process per producing service; several may run)
* ``prune``     delete old duplicate marks, task results, handled dead letters, sent outbox rows
* ``backfill --service S --since TIME``  the archive's events since TIME into S's queue only
* ``archive status``  the archive's size, oldest and newest event, growth (docs/archive.md)
* ``deadletters list|show|replay|discard``  act on this service's dead letters
* ``keys generate|public``  an Ed25519 key pair for signed envelopes (``management/keys.py``)
* ``broker-users [--service S] [--apply --password-dir DIR]``  a least-privilege broker user per
                service: prints (or runs) the ``rabbitmqctl`` lines (``management/broker_users.py``)
* ``schema snapshot|check``  record the catalog's shape; refuse changes that break a version
* ``schema export``  JSON Schema per type and an AsyncAPI 3 document (``exports``)
* ``metrics``   serve Prometheus metrics Flower lacks: queue depth, dead letters, outbox, duplicates
* ``queues migrate --service S --to quorum|classic``  RabbitMQ: move a service's queue to another
                type without losing an event (``management/queues.py``, docs/migrating-queues.md)

Exit codes (``docs/operations.md``): 0 done, 1 a finding (drift, an event found nowhere, a dead
letter id that does not exist, a payload refused), 2 the command could not do its work here (the
broker unreachable or unsupported, the fabric's tables missing, an impossible option): one line
each (``management/failures.py``), the exception behind it with ``events --traceback``.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING

from django.core.management.base import BaseCommand, CommandError, CommandParser

from event_tasks import catalog
from event_tasks.brokers.topology import declare, queue_type_for, service_queue, subscription_table
from event_tasks.conf import settings
from event_tasks.errors import ManagementAPIUnavailable
from event_tasks.handlers import consuming_services, service_handlers
from event_tasks.management import failures
from event_tasks.management.arguments import add_arguments, check_options, read_payload
from event_tasks.send.publisher import default_publisher, send_event, the_app
from event_tasks.send.relay import Relay

if TYPE_CHECKING:
    from celery import Celery


class Command(BaseCommand):
    help = "Operate the event fabric: declare topology, inspect the catalog and subscriptions, send events."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def get_version(self) -> str:
        """``events --version``: the installed event-tasks (Django's own version otherwise)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"event-tasks {version('event-tasks')}"
        except PackageNotFoundError:
            return "event-tasks (not installed as a package: no version recorded)"

    def execute(self, *args: object, **options: object) -> str | None:
        """The entry of every subcommand (``call_command`` too): impossible options, an unsupported or
        unreachable broker and missing tables end here in one line and exit 2 (``failures``);
        before Django's system checks, which would report an unsupported broker in a block of lines."""
        action = str(options.get("action"))
        app = None
        try:
            check_options(action, options)
            if failures.needs_broker(action, options):
                app = the_app()
                failures.probe_broker(app)
            elif action in failures.PUBLISH_ACTIONS:
                app = the_app()
                failures.check_kind(app)
            return super().execute(*args, **options)
        except CommandError:
            raise
        except Exception as exc:
            on_broker = failures.needs_broker(action, options)
            error = failures.command_error(exc, app or _app_if_known(), on_broker=on_broker)
            if error is None:
                raise
            raise error from exc

    def handle(self, *args: object, action: str, **options: object) -> None:
        getattr(self, "do_" + action.replace("-", "_"))(**options)

    def do_declare(self, service: list[str] | None = None, **_: object) -> None:
        from event_tasks.ops.live_queues import refuse_mismatched

        known = consuming_services()
        services = service or known
        unknown = sorted(set(services) - set(known))
        if unknown:
            raise CommandError(
                f"no handlers of {', '.join(unknown)} are installed here (services with handlers: "
                f"{', '.join(known) or 'none'})"
            )
        if not services:
            if settings().service:  # a service that only produces: nothing to subscribe
                self.stdout.write(f"service {settings().service!r} has no handlers: no queue to declare")
                return
            raise CommandError(
                "this process sees no handlers: set EVENT_TASKS_SERVICE, and put @consumer handlers in "
                f"a '{settings().handlers_module}' module of an installed app"
            )
        queue_type = queue_type_for(the_app().conf.broker_url or "")
        queues = [
            service_queue(s, service_handlers(s).patterns, queue_type, single_active=bool(service_handlers(s).ordered))
            for s in services
        ]
        with the_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=3)
            refuse_mismatched(conn, queues)  # RabbitMQ: a queue of another type is one line, not a 406
            declare(conn, queues)
        for q in queues:
            keys = ", ".join(b.routing_key for b in q.bindings) or "(no subscriptions)"
            self.stdout.write(f"declared {q.name}: {keys}")

    def do_catalog(self, **options: object) -> None:
        consumers: dict[str, list[str]] = {}
        for s in consuming_services():
            for t in service_handlers(s).event_types:
                consumers.setdefault(t, []).append(s)
        rows: list[_CatalogListing] = [
            {**row, "consumers": consumers.get(row["type"], [])} for row in catalog.describe()
        ]
        if options.get("json"):
            self.stdout.write(_json(rows))
            return
        for row in rows:
            self.stdout.write(
                f"{row['type']}\n    owner: {row['owner']}; consumers: "
                f"{', '.join(row['consumers']) or '-'}\n    {row['description']}"
            )

    def do_topology(
        self,
        topology_action: str = "show",
        services: list[str] | None = None,
        prune: bool = False,
        ignore_consumers: bool = False,
        json: bool = False,
        **options: object,
    ) -> None:
        if topology_action == "verify":
            from event_tasks.ops.topology_check import run_verify

            code = run_verify(
                the_app(),
                self.stdout.write,
                self.stderr.write,
                services=services,
                prune=prune,
                ignore_consumers=ignore_consumers,
                json=json,
                **options,
            )
            if code:
                raise CommandError(
                    "topology drift (see above)" if code == 1 else "topology not verified", returncode=code
                )
            return
        with the_app().connection_for_write() as conn:
            try:
                table = subscription_table(conn)
                if json:
                    self.stdout.write(_json([{"queue": q, "routing_key": k} for k, q in table]))
                    return
                for pattern, queue in table:
                    self.stdout.write(f"{queue:32} <- {pattern}")
                return
            except ManagementAPIUnavailable as exc:
                self.stderr.write(str(exc))
        for s in consuming_services():
            for p in service_handlers(s).patterns:
                self.stdout.write(f"{settings().queue_name(s):32} <- {p}  (declared by `events declare`)")

    def do_status(
        self,
        services: list[str] | None = None,
        watch: float | None = None,
        no_workers: bool = False,
        timeout: float | None = None,
        json: bool = False,
        **_: object,
    ) -> None:
        from event_tasks.ops.status import collect, render

        try:
            while True:
                data = collect(services=services, workers=not no_workers, timeout=timeout)
                self.stdout.write(_json(data) if json else render(data))
                if watch is None:
                    return
                time.sleep(watch)
                self.stdout.write("")
        except KeyboardInterrupt:  # --watch ends with Ctrl-C
            return

    def do_trace(self, event_id: str, services: list[str] | None = None, json: bool = False, **_: object) -> None:
        from event_tasks.ops.trace import render, trace

        data = trace(event_id, services=services)
        self.stdout.write(_json(data) if json else render(data))
        if data["type"] is None:
            raise CommandError(f"event {event_id} was found nowhere this process can see", returncode=1)

    def do_tail(
        self, pattern: str = "#", count: int | None = None, lease: float = 30.0, json: bool = False, **_: object
    ) -> None:
        import threading

        from event_tasks.ops.tail import run

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

        def out(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        run(the_app(), out, self.stderr.write, pattern=pattern, as_json=json, count=count, lease=lease, stop=stop)

    def do_send(
        self, event_type: str, data: str, key: str | None = None, event_id: str | None = None, **_: object
    ) -> None:
        event = send_event(event_type, read_payload(data), key=key, id=event_id)
        self.stdout.write(event.id)

    def do_relay(self, once: bool = False, grace: float | None = None, batch: int = 200, **_: object) -> None:
        from event_tasks.models import OutboxEvent

        relay = Relay(default_publisher(), grace=grace, batch=batch)
        failures.check_tables(OutboxEvent, relay.using)  # the relay would wait for the table as for a database down
        if once:
            self.stdout.write(relay.summary(relay.drain()))
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: relay.stop.set())
        relay.run_forever()
        self.stdout.write(f"relay stopped; published {relay.sent} event(s)")

    def do_prune(self, dry_run: bool = False, **_: object) -> None:
        from event_tasks.store import retention

        transport = the_app().conf.broker_transport_options or {}
        pruned = retention.prune(dry_run=dry_run, visibility_timeout=transport.get("visibility_timeout"))
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} " + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in pruned.counts.items()))
        if settings().archive_days is not None and not dry_run:  # the Redis archive past its retention
            from event_tasks.management.archive import trim

            trim(the_app(), self.stdout.write)

    def do_backfill(self, **options: object) -> None:
        from event_tasks.management.archive import backfill  # docs/archive.md

        backfill(the_app(), self.stdout, self.stderr, **options)  # type: ignore[arg-type]  # argparse's values, typed by arguments.py

    def do_archive(self, **options: object) -> None:
        from event_tasks.management.archive import status

        status(the_app(), self.stdout.write, **options)  # type: ignore[arg-type]  # argparse's values, typed by arguments.py

    def do_schema(self, schema_action: str, file: str | None = None, out: str = "schema-export", **_: object) -> None:
        import importlib
        from pathlib import Path

        from event_tasks.ops import schema_check as schemacheck

        if schema_action == "export":
            from event_tasks.ops.exports import write

            written = write(Path(out), progress=self.stderr.write)
            self.stdout.write(f"wrote {len(written) - 1} JSON Schemas and asyncapi.json under {out}")
            return

        package = settings().schemas_packages[0]
        if file:
            path = Path(file)
        else:
            package_file = importlib.import_module(package).__file__
            assert package_file is not None  # None for a namespace package (Path(None) raised TypeError before)
            path = Path(package_file).parent / "catalog.json"
        if schema_action == "snapshot":
            count = schemacheck.write(path)
            self.stdout.write(f"recorded {count} event types in {path}")
            return
        if not path.exists():
            raise CommandError(f"no snapshot at {path}: run `events schema snapshot` and commit the file")
        problems = schemacheck.breaking_changes(json.loads(path.read_text()), schemacheck.snapshot())
        if problems:
            raise CommandError("breaking schema changes against " + str(path) + ":\n  " + "\n  ".join(problems))
        self.stdout.write(f"the catalog is compatible with {path}")

    def do_keys(self, keys_action: str, key_service: str | None = None, out: str | None = None, **_: object) -> None:
        from event_tasks.management.keys import run  # signed envelopes (docs/signing.md)

        run(keys_action, self.stdout.write, service=key_service, out=out)

    def do_broker_users(
        self,
        user_services: list[str] | None = None,
        password_dir: str | None = None,
        apply: bool = False,
        rabbitmqctl: str = "rabbitmqctl",
        host_queues: list[str] | None = None,
        **_: object,
    ) -> None:
        from event_tasks.management.broker_users import run  # docs/broker-users.md

        url = failures.broker_url(the_app())
        run(
            url,
            settings(),
            self.stdout.write,
            services=user_services,
            password_dir=password_dir,
            do_apply=apply,
            ctl=rabbitmqctl,
            host_queues=host_queues or (),
        )

    def do_deadletters(
        self,
        dl_action: str,
        ids: list[int],
        limit: int = 50,
        all: bool = False,  # noqa: A002
        service: str | None = None,
        event_type: str | None = None,
        reason: str | None = None,
        older_than: float | None = None,
        newer_than: float | None = None,
        **_: object,
    ) -> None:
        from event_tasks.management.deadletters import run

        run(
            dl_action,
            ids,
            self.stdout.write,
            limit=limit,
            all=all,
            service=service,
            event_type=event_type,
            reason=reason,
            older_than=older_than,
            newer_than=newer_than,
        )

    def do_queues(self, queues_action: str, service: str, queue_type: str, **_: object) -> None:
        from event_tasks.management.queues import run

        def out(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        run(the_app(), queues_action, service, queue_type, out)

    def do_metrics(
        self, port: int, address: str, metric_services: list[str] | None = None, workers: bool = False, **_: object
    ) -> None:
        from event_tasks.ops import metrics

        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        metrics.run(port, address, services=metric_services, workers=workers, write=write)


def _app_if_known() -> Celery | None:
    """The host's Celery app for an error message, or None where there is none to name."""
    try:
        return the_app()
    except Exception:  # noqa: BLE001 - only naming the broker URL: the error being reported is another
        return None


class _CatalogListing(catalog.CatalogRow):
    """A row of ``events catalog``: the catalog's row and the services that consume the type."""

    consumers: list[str]


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
