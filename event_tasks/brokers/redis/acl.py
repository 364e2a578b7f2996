"""Redis ACL users per service: the narrowest key patterns, commands and channels the transport uses.

:func:`plan` computes one :class:`AclUser` per service from the catalog (a type's owner is its
producer) and the handlers (who consumes what); :func:`rules_text` renders a user as an
``ACL SETUSER`` line for ``redis-cli``; :func:`apply` runs those lines on a server. Every rule
below was found by watching the real processes (``MONITOR``, then ``ACL LOG`` with these users:
``tests/integration/test_redis_acl.py``); docs/redis-acl.md says why each one is there, what it
stops and what it cannot.

Each group of keys is a selector (Redis ≥ 7) holding only the commands used on those keys, so a
right on one key does not extend to the commands used on another. Redis checks the commands a
script calls against the caller's user as well, so the scripts' keys (``EVALSHA``'s, which Redis
counts as read-write) give nothing beyond what the script's own commands are allowed.

A consuming service (one with handlers), queue ``Q`` = ``conf.queue_name(service)``:

* its queue keys: ``Q``, kombu's priority lists and the fabric's in-flight lists (``Q`` + ``\\x06\\x16…``),
  ``unacked:Q``, ``unacked_index:Q``, ``unacked_mutex:Q``: read and write, with the list, hash,
  sorted-set and mutex commands of the consume step, the restores and the retries;
* the binding set of the exchange (``_kombu.binding.events`` and kombu's ``_kombu.binding_permanent.events``):
  ``SADD`` (Celery declares the queue's bindings at every start), ``SMEMBERS``, ``SCARD``; no
  ``SREM`` or ``DEL``: pruning a removed handler's binding is the release step's
  (``events declare``, as the admin);
* the routes the fan-out keeps (``_event_tasks.routes.events``): ``DEL`` (a declare drops them);
* the live tails' heartbeats: ``EXISTS`` (a declare leaves a running ``events tail`` alone);
* Celery's remote control: its pidbox binding tables and their deadlines, its node's pidbox list,
  ``LPUSH`` into reply queues, ``PSUBSCRIBE`` to the pidbox channel (not ``PUBLISH``: a service
  cannot send control commands), ``PUBLISH`` to the task-event channels (``celeryev``);
* kombu's restore of the host's own channels: ``unacked``, ``unacked_index``, ``unacked_mutex``.

A producing service (the owner of a type): the fan-out script (``EVALSHA`` on the binding set and
the routes), read-only ``SCARD``/``SMEMBERS`` on the binding set, the routes hash, and write-only
``LPUSH`` into the queues of the services whose handlers take its types, and of ``events tail``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ... import catalog, handlers
from ...conf import Settings, check_service_name
from ...errors import ConfigurationError
from ..topology import BINDING_KEY, ROUTES_KEY

if TYPE_CHECKING:
    import redis

SEP = "\x06\x16"  # kombu's separator: priority lists, the fabric's in-flight lists
USER_PREFIX = "events-"
ADMIN_USER = "events-admin"
# Celery's control and event exchanges (its defaults: app.conf.control_exchange, event_exchange)
PIDBOX = "celery.pidbox"
REPLY_PIDBOX = "reply.celery.pidbox"
CELERYEV = "celeryev"
# keyless commands every user sends: connecting (HELLO: RESP3, SELECT: the URL's db), INFO (the
# transport's version check), TIME (inside scripts), loading scripts, MULTI/EXEC and UNWATCH (kombu's pipelines).
# Not redis-py's CLIENT SETINFO (Redis ≥ 7.2; redis-py goes on when it is refused).
COMMON = (
    "+ping",
    "+hello",
    "+select",
    "+quit",
    "+info",
    "+time",
    "+script|load",
    "+script|exists",
    "+multi",
    "+exec",
    "+discard",
    "+unwatch",
    "+wait",  # EVENT_TASKS_REDIS_WAIT_REPLICAS: after a publish, a replayed dead letter
)
OWN_QUEUE = (
    "+llen",
    "+lpush",
    "+rpush",
    "+rpop",
    "+brpop",
    "+blmove",
    "+lrem",
    "+lrange",
    "+lindex",
    "+hset",
    "+hget",
    "+hdel",
    "+hexists",
    "+hlen",
    "+zadd",
    "+zrem",
    "+zrange",
    "+zrangebyscore",
    "+zrevrangebyscore",
    "+set",
    "+get",
    "+del",
    "+exists",
    "+watch",  # kombu's restore: a watched pipeline on the unacked keys
    "+evalsha",
    "+eval",
)
HOST_UNACKED = (
    *("+hset", "+hget", "+hdel", "+zadd", "+zrem", "+zrange", "+zrevrangebyscore"),
    *("+set", "+get", "+del", "+watch", "+evalsha", "+eval"),
)


@dataclasses.dataclass(frozen=True)
class AclUser:
    """A Redis ACL user: its name and its rules (without ``reset``, ``on`` and the password)."""

    name: str
    rules: tuple[str, ...]


def selector(patterns: Sequence[str], commands: Sequence[str]) -> str:
    """A Redis 7 selector: the commands allowed on (only) these key or channel patterns."""
    return "(" + " ".join((*patterns, *commands)) + ")"


def glob(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def subscriptions() -> dict[str, list[str]]:
    """The event types each consuming service takes (its handlers), as this process sees them."""
    return {s: handlers.service_handlers(s).event_types for s in handlers.consuming_services()}


def plan(
    services: Sequence[str],
    conf: Settings,
    *,
    db: int = 0,
    consumers: Mapping[str, Sequence[str]] | None = None,
    host_queues: Sequence[str] = (),
) -> list[AclUser]:
    """One user per service, named ``events-<service>``, with the rules of its roles.

    ``db``: the broker URL's database number (Celery's channels are named after it: ``/<db>.celery.pidbox``).
    ``consumers``: the event types each consuming service takes (default: its handlers, as
    discovered in this process: a tooling process sees every service's).
    ``host_queues``: the host's own Celery queues each consuming worker also takes, ``{service}``
    standing for the service (the demo's ``maintenance.{service}``, where beat sends the prune task).
    """
    taken = subscriptions() if consumers is None else {s: list(t) for s, t in consumers.items()}
    owners = {e.name: e.owner for package in conf.schemas_packages for e in catalog.all(package)}
    users = []
    for service in services:
        check_service_name(service)
        owned = sorted(t for t, owner in owners.items() if owner == service)
        readers = sorted(s for s, types in taken.items() if set(types) & set(owned))
        if service not in taken and not owned:
            raise ConfigurationError(
                f"service {service!r} neither owns an event type nor has handlers: it needs no Redis user"
            )
        rules = list(COMMON)
        if owned:
            rules += producer_rules(conf, [conf.queue_name(s) for s in readers])
        if service in taken:
            rules += consumer_rules(conf, conf.queue_name(service), db)
            for host_queue in host_queues:
                rules += host_queue_rules(host_queue.format(service=service))
        users.append(AclUser(USER_PREFIX + service, tuple(dict.fromkeys(rules))))
    return users


def shared_keys(conf: Settings) -> tuple[str, str, str]:
    """The binding set, kombu's permanent copy of it, and the routes the fan-out keeps."""
    exchange = conf.exchange
    return (
        BINDING_KEY.format(exchange=exchange),
        f"_kombu.binding_permanent.{exchange}",
        ROUTES_KEY.format(exchange=exchange),
    )


def producer_rules(conf: Settings, queues: Sequence[str]) -> list[str]:
    """The fan-out script, the routes it keeps, and ``LPUSH`` only into the subscribers' queues."""
    bindings, _, routes = (glob(k) for k in shared_keys(conf))
    targets = [f"%W~{glob(q)}" for q in queues] + [f"%W~{glob(conf.queue_prefix)}tail.*"]
    return [
        selector([f"~{bindings}", f"~{routes}"], ["+evalsha", "+eval"]),
        selector([f"%R~{bindings}"], ["+scard", "+smembers"]),
        selector([f"~{routes}"], ["+hmget", "+hget", "+hset", "+del"]),
        selector(targets, ["+lpush"]),
    ]


def consumer_rules(conf: Settings, queue: str, db: int) -> list[str]:
    """Its own queue's keys, declaring its bindings, Celery's control and task events."""
    bindings, permanent, routes = (glob(k) for k in shared_keys(conf))
    q = glob(queue)
    own = [f"~{q}", f"~{q}{SEP}*", f"~unacked:{q}", f"~unacked_index:{q}", f"~unacked_mutex:{q}"]
    pidbox_tables = [
        f"~_kombu.binding.{PIDBOX}",
        f"~_kombu.binding_permanent.{PIDBOX}",
        f"~_kombu.binding.{REPLY_PIDBOX}",
        "~_kombu.binding_deadlines",
    ]
    return [
        f"&/{db}.{CELERYEV}/*",
        "+publish",  # task and worker events, on the channels above only
        selector([f"&/{db}.{PIDBOX}"], ["+psubscribe", "+punsubscribe"]),  # control commands: received, never sent
        selector(own, OWN_QUEUE),
        selector([f"~{bindings}", f"~{permanent}"], ["+sadd", "+smembers", "+scard"]),
        selector([f"~{routes}"], ["+del"]),
        selector([f"%R~_event_tasks.tail_alive.{glob(conf.queue_prefix)}tail.*"], ["+exists"]),
        selector(pidbox_tables, ["+sadd", "+srem", "+smembers", "+zadd", "+zrangebyscore", "+zrem", "+exists"]),
        selector(pidbox_tables, ["+del", "+evalsha", "+eval"]),
        selector([f"~*@*.{PIDBOX}", f"~*@*.{PIDBOX}{SEP}*"], ["+llen", "+del"]),  # its node's pidbox list
        selector([f"%W~*.{REPLY_PIDBOX}"], ["+lpush"]),  # replies to control commands
        selector(["~unacked", "~unacked_index", "~unacked_mutex"], HOST_UNACKED),
    ]


def host_queue_rules(queue: str) -> list[str]:
    """A host's own Celery queue, consumed the kombu way: its lists (priority steps too) and the
    bindings of the direct exchange Celery names after it (its messages are tracked in ``unacked``)."""
    q = glob(queue)
    return [
        selector([f"~{q}", f"~{q}{SEP}*"], ["+llen", "+lpush", "+rpush", "+brpop", "+rpop", "+del"]),
        selector([f"~_kombu.binding.{q}", f"~_kombu.binding_permanent.{q}"], ["+sadd", "+smembers", "+scard"]),
    ]


def admin(name: str = ADMIN_USER) -> AclUser:
    """The operators' user (``events declare``, ``status``, ``tail``, ``replay``, ``topology``,
    Flower): every key and channel, no dangerous command but ``INFO``."""
    return AclUser(name, ("~*", "&*", "+@all", "-@dangerous", "+info"))


def quoted(token: str) -> str:
    """A token as ``redis-cli`` (and an ACL file) reads it back: quoted, escapes for what is not printable."""
    if re.fullmatch(r"[A-Za-z0-9_.:+~%&@|*/=-]+", token) and not token.startswith(">"):
        return token
    out = []
    for char in token:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}")
    return '"' + "".join(out) + '"'


def rules_text(user: AclUser, password: str = "<password>") -> str:
    """The ``ACL SETUSER`` line of ``user`` (``reset`` first, then ``on`` and the password)."""
    tokens = ["ACL", "SETUSER", user.name, "reset", "on", ">" + password, *user.rules]
    return " ".join(quoted(t) for t in tokens)


def apply(client: redis.Redis, users: Sequence[AclUser], passwords: Mapping[str, str]) -> None:
    """Create or replace each user in turn (``reset``, ``on``, its password, its rules); nothing is
    changed unless every user has a password. The users live in the server's memory: ``ACL SAVE``
    (with an ``aclfile``) or the config file keeps them across a restart."""
    import redis

    missing = [u.name for u in users if not passwords.get(u.name)]
    if missing:
        raise ConfigurationError(f"no password given for Redis ACL user(s) {', '.join(missing)}: give one for each")
    for user in users:
        try:
            client.execute_command("ACL", "SETUSER", user.name, "reset", "on", ">" + passwords[user.name], *user.rules)
        except redis.ResponseError as exc:  # an older Redis (selectors: ≥ 7.0), or a rule it does not know
            raise ConfigurationError(f"Redis refused the ACL user {user.name}: {exc} (Redis ≥ 7.0 is needed)") from None
