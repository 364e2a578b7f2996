"""``events broker-users``: a broker user per service, with the least privilege it needs (docs/broker-users.md).

RabbitMQ: prints, per service (every service of the catalog and of the handlers this process sees,
or ``--service S``), the ``rabbitmqctl`` lines that create its user and set its permissions on the
vhost of the broker URL (``brokers.rabbitmq.users`` works them out). ``--apply`` makes them with
``rabbitmqctl`` on this machine, in one ``import_definitions`` (a ``rabbitmqctl`` call per line takes a
second each; a quorum platform has 29 topic grants per service), reading each password from
``--password-dir DIR`` (``DIR/<service>``) and handing ``rabbitmqctl`` only its salted hash, on its
standard input: never a password, never on a command line. Redis: the ACL users of
``brokers.redis.acl`` (one per service and ``events-admin``), printed as ``ACL SETUSER`` lines or, with
``--apply``, made on the broker URL's server (passwords from ``DIR/<user>``, e.g. ``DIR/events-alpha``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from kombu import Connection

from .. import catalog
from ..brokers.rabbitmq.users import Grants, grants
from ..brokers.redis import acl as redis_acl
from ..brokers.redis.clients import redis_client
from ..brokers.topology import broker_kind
from ..conf import Settings, check_service_name
from ..errors import ConfigurationError, UnknownService
from ..handlers import consuming_services, service_handlers

PLACEHOLDER = "'<password>'"


def add_parser(sub: Any) -> None:  # Any: argparse's _SubParsersAction (a private class)
    """The ``broker-users`` subcommand on ``events``' subparsers."""
    users = sub.add_parser(
        "broker-users", help="per service: a broker user with least privilege (prints rabbitmqctl lines; --apply)"
    )
    users.add_argument("--service", action="append", dest="user_services", help="only these services (repeatable)")
    users.add_argument(
        "--host-queue",
        action="append",
        dest="host_queues",
        metavar="NAME",
        help="another queue the service's worker consumes, {service} replaced (repeatable; e.g. 'maintenance.{service}')",
    )
    users.add_argument("--password-dir", help="DIR/<service> holds each service's password (never on argv)")
    users.add_argument("--apply", action="store_true", help="create the users and grants (needs --password-dir)")
    users.add_argument(
        "--rabbitmqctl", default="rabbitmqctl", help="the rabbitmqctl to print and run (default: on the PATH)"
    )


def known_services(conf: Settings) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The catalog's ``{type: owner}`` and the visible handlers' ``{service: patterns}``."""
    owners = {t.name: t.owner for t in catalog.all()}
    subscriptions = {s: service_handlers(s).patterns for s in consuming_services()}
    return owners, subscriptions


def selected(conf: Settings, services: Sequence[str] | None, host_queues: Sequence[str] = ()) -> list[Grants]:
    """The grants of ``services`` (default: every service known here); an unknown one is one line."""
    owners, subscriptions = known_services(conf)
    every = grants(owners, subscriptions, conf, host_queues=host_queues)
    if not services:
        return every
    known = {g.service: g for g in every}
    for name in services:
        try:
            check_service_name(name)
        except UnknownService as exc:
            raise CommandError(f"events broker-users: {exc}", returncode=2) from exc
    unknown = sorted(set(services) - set(known))
    if unknown:
        raise CommandError(
            f"events broker-users: no service {', '.join(unknown)} in the catalog or the handlers seen here "
            f"(known: {', '.join(sorted(known)) or 'none'})",
            returncode=2,
        )
    return [known[s] for s in dict.fromkeys(services)]


def commands(grant: Grants, vhost: str) -> list[list[str]]:
    """The ``rabbitmqctl`` arguments of one service, passwords aside (``add_user`` reads it from stdin)."""
    lines = [
        ["add_user", grant.user],
        ["set_permissions", "-p", vhost, grant.user, grant.configure, grant.write, grant.read],
    ]
    lines += [["set_topic_permissions", "-p", vhost, grant.user, t.exchange, t.write, t.read] for t in grant.topics]
    return lines


def render(grant: Grants, vhost: str, ctl: str = "rabbitmqctl", password_dir: str | None = None) -> list[str]:
    """The lines ``events broker-users`` prints for one service (a shell script, comments included)."""
    owns = ", ".join(grant.owns) or "nothing"
    subscribes = ", ".join(grant.subscribes) or "nothing (no handlers of it are seen here)"
    out = [f"# {grant.service}: user {grant.user!r}; publishes {owns}; subscribes {subscribes}"]
    for args in commands(grant, vhost):
        line = " ".join(shlex.quote(a) for a in [ctl, *args])
        if args[0] == "add_user":
            source = shlex.quote(str(Path(password_dir) / grant.service)) if password_dir else None
            line = f"{line} < {source}" if source else f"{line} {PLACEHOLDER}"
        out.append(line)
    return out


def password_of(service: str, password_dir: str) -> str:
    path = Path(password_dir) / service
    try:
        password = path.read_text().strip("\r\n")
    except OSError as exc:
        raise CommandError(
            f"events broker-users: cannot read the password of {service} from {path}: {exc.strerror}", returncode=2
        ) from exc
    if not password:
        raise CommandError(f"events broker-users: {path} is empty: put {service}'s password in it", returncode=2)
    return password


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64 of a 4-byte salt and sha256(salt + password)."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(chosen: Sequence[Grants], vhost: str, passwords: Mapping[str, str]) -> dict[str, object]:
    """The users and grants as RabbitMQ's definitions (``rabbitmqctl import_definitions``): one import for all."""
    return {
        "users": [
            {
                "name": g.user,
                "password_hash": password_hash(passwords[g.service]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": "",
            }
            for g in chosen
        ],
        "permissions": [
            {"user": g.user, "vhost": vhost, "configure": g.configure, "write": g.write, "read": g.read} for g in chosen
        ],
        "topic_permissions": [
            {"user": g.user, "vhost": vhost, "exchange": t.exchange, "write": t.write, "read": t.read}
            for g in chosen
            for t in g.topics
        ],
    }


def apply(chosen: Sequence[Grants], vhost: str, passwords: Mapping[str, str], ctl: str) -> None:
    """Create (or update) the users and set their permissions: one ``rabbitmqctl import_definitions``,
    the definitions (password hashes, never a password) on its standard input."""
    text = json.dumps(definitions(chosen, vhost, passwords))
    args = ["import_definitions", "--format", "json"]  # no file: from standard input (3.10 takes no "-")
    result = subprocess.run([ctl, *args], input=text, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).split())[:500]
        raise CommandError(f"events broker-users --apply: {ctl} import_definitions failed: {said}", returncode=2)


def run(
    broker_url: str,
    conf: Settings,
    write: Callable[[str], object],
    *,
    services: Sequence[str] | None = None,
    password_dir: str | None = None,
    do_apply: bool = False,
    ctl: str = "rabbitmqctl",
    host_queues: Sequence[str] = (),
) -> None:
    kind = broker_kind(broker_url)
    if kind == "redis":
        _redis(broker_url, conf, write, services, do_apply, password_dir, host_queues)
        return
    if kind != "amqp":
        raise CommandError(f"events broker-users: broker users are for RabbitMQ and Redis, not {kind}://", returncode=2)
    chosen = selected(conf, services, host_queues)
    vhost = Connection(broker_url.split(";")[0]).virtual_host or "/"
    if not do_apply:
        write(f"# broker users on vhost {vhost!r} (docs/broker-users.md); set EVENT_TASKS_BROKER_USERS to match")
        for grant in chosen:
            for line in render(grant, vhost, ctl, password_dir):
                write(line)
        return
    if not password_dir:
        raise CommandError("events broker-users --apply: name --password-dir DIR (DIR/<service>)", returncode=2)
    if shutil.which(ctl) is None:
        raise CommandError(f"events broker-users --apply: {ctl} is not on the PATH (or --rabbitmqctl)", returncode=2)
    own = Connection(broker_url.split(";")[0]).userid or "guest"
    if any(g.user == own for g in chosen):  # the import would replace its tags and permissions: no admin after
        raise CommandError(
            f"events broker-users --apply: {own!r} is the user of the broker URL this runs with; a service's user "
            "must be another one (EVENT_TASKS_BROKER_USERS)",
            returncode=2,
        )
    passwords = {g.service: password_of(g.service, password_dir) for g in chosen}  # every one before any change
    apply(chosen, vhost, passwords, ctl)
    for grant in chosen:
        write(f"{grant.service}: user {grant.user!r} has its permissions on vhost {vhost!r}")


def _redis(
    broker_url: str,
    conf: Settings,
    write: Callable[[str], object],
    services: Sequence[str] | None,
    do_apply: bool,
    password_dir: str | None,
    host_queues: Sequence[str],
) -> None:
    """Redis: an ACL user per service (``brokers.redis.acl``) and the operators' ``events-admin``; printed
    as ``ACL SETUSER`` lines, or made on the broker URL's server with ``--apply``."""
    url = broker_url.split(";")[0]
    owners, subscriptions = known_services(conf)
    names = list(services or sorted({*subscriptions, *(g.service for g in grants(owners, {}, conf))}))
    number = str(Connection(url).virtual_host or "0").strip("/")
    db = int(number) if number.isdigit() else 0  # Celery's channels are named after it
    try:
        users = [*redis_acl.plan(names, conf, db=db, host_queues=host_queues), redis_acl.admin()]
    except ConfigurationError as exc:
        raise CommandError(f"events broker-users: {exc}", returncode=2) from exc
    if not do_apply:
        write(
            "# Redis ACL users (docs/redis-acl.md); each service's URL then names its own: redis://events-<service>:…@"
        )
        for user in users:
            source = f"$(cat {shlex.quote(str(Path(password_dir) / user.name))})" if password_dir else "<password>"
            write(redis_acl.rules_text(user, source))
        return
    if not password_dir:
        raise CommandError("events broker-users --apply: name --password-dir DIR (DIR/<user>)", returncode=2)
    passwords = {user.name: password_of(user.name, password_dir) for user in users}  # every one before any change
    client = redis_client(url, {})
    try:
        redis_acl.apply(client, users, passwords)
    except ConfigurationError as exc:
        raise CommandError(f"events broker-users --apply: {exc}", returncode=2) from exc
    finally:
        client.close()
    for user in users:
        write(f"{user.name}: ACL user made on {Connection(url).hostname}:{Connection(url).port}/{db}")
