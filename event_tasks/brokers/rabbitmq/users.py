"""Least privilege on RabbitMQ: the permissions of each service's own broker user (docs/broker-users.md).

From who owns which types (the catalog) and what each service subscribes to (its handlers'
patterns), :func:`grants` works out, per service, what ``rabbitmqctl set_permissions`` and
``set_topic_permissions`` take: three regexes on the vhost (configure, write, read: matched
against exchange and queue names) and, per topic exchange, two regexes on routing keys.

* **write**: the exchange ``events`` (the topic permission limits its routing keys to the types
  the service owns: it cannot publish another service's type), its own retry exchange
  ``events.<service>.retry`` (decision 0017: the way back into its own queue, instead of the
  default exchange, which would reach every queue), its own queues (RabbitMQ checks write on the
  destination of a binding), and Celery's event and reply exchanges (``celeryev``,
  ``reply.celery.pidbox``); never ``amq.default``, never another service's queue or exchange.
  Quorum queues: the delay levels ``celery_delayed_<n>`` too, each with a topic permission that
  only takes routing keys ending in the service's own queue name.
* **read**: its own queue (and parked queue), the exchanges it binds its queues on (``events``,
  its retry exchange, Celery's ``celery.pidbox`` and ``celeryev``; the topic read permission on
  ``events`` limits the binding keys to its subscriptions) and the worker's own auto-delete
  queues ``<host>.celery.pidbox`` and ``celeryev.<uuid>``.
* **configure**: what a worker declares: the same names, plus ``events`` itself.

A service name is ``[a-z][a-z0-9_]*`` (no dot), so ``events\\.lms`` matches no queue of another
service and ``.*\\.celery\\.pidbox`` no service queue. Bytes and names only: no broker here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

from kombu.transport.native_delayed_delivery import (
    CELERY_DELAYED_DELIVERY_EXCHANGE,
    MAX_LEVEL,
    MAX_NUMBER_OF_BITS_TO_USE,
    level_name,
)

from ...conf import Settings

#: a regex RabbitMQ matches against no name and no routing key (a negative look-ahead of nothing)
NOTHING = "^(?!)$"
#: Celery's exchanges a worker binds its own queues on (remote control, events)
CELERY_SOURCES = ("celery.pidbox", "celeryev")
#: Celery's exchanges a worker publishes to: task events and heartbeats, replies to remote control
CELERY_TARGETS = ("celeryev", "reply.celery.pidbox")
#: the worker's own auto-delete queues (regexes): its remote control queue and its event receiver
CELERY_QUEUES = (r".+\.celery\.pidbox", r"celeryev\..+")
#: quorum queues: the delay levels (exchanges and queues) and the exchange they hand retries back through
DELAYS = r"celery_delayed_([0-9]+|delivery)"


@dataclasses.dataclass(frozen=True)
class TopicGrant:
    """``set_topic_permissions``: the routing keys a user may publish (write) and bind (read) on one topic exchange."""

    exchange: str
    write: str
    read: str


@dataclasses.dataclass(frozen=True)
class Grants:
    """One service's broker user and its permissions on the vhost."""

    service: str
    user: str
    configure: str
    write: str
    read: str
    topics: tuple[TopicGrant, ...]
    owns: tuple[str, ...]
    subscribes: tuple[str, ...]


def alternation(names: Iterable[str], *, raw: Iterable[str] = ()) -> str:
    """An anchored regex matching exactly ``names`` (escaped) and the regexes ``raw``; :data:`NOTHING` for none."""
    parts = sorted({re.escape(n) for n in names}) + sorted(set(raw))
    if not parts:
        return NOTHING
    return "^(" + "|".join(parts) + ")$"


def user_of(service: str, conf: Settings) -> str:
    """The broker user of ``service``: ``EVENT_TASKS_BROKER_USERS[service]``, else the service's name."""
    return (conf.broker_users or {}).get(service, service)


def publishers_of(owner: str, signing_owners: Mapping[str, Sequence[str]] | None) -> tuple[str, ...]:
    """The services that publish the types of a catalog owner: ``EVENT_TASKS_SIGNING_OWNERS`` maps an owner
    that is no service (openedx-events names repositories); any other owner is its own service."""
    mapped = (signing_owners or {}).get(owner)
    return tuple(mapped) if mapped else (owner,)


def owned_types(owners: Mapping[str, str], conf: Settings) -> dict[str, list[str]]:
    """``{service: [types it publishes]}`` from the catalog's ``{type: owner}``."""
    owned: dict[str, list[str]] = {}
    for event_type, owner in sorted(owners.items()):
        for service in publishers_of(owner, conf.signing_owners):
            owned.setdefault(service, []).append(event_type)
    return owned


def grants_for(
    service: str, owns: Sequence[str], subscribes: Sequence[str], conf: Settings, host_queues: Sequence[str] = ()
) -> Grants:
    """The permissions of ``service``'s broker user: publish ``owns``, bind ``subscribes``, its own queues only.

    ``host_queues``: more queues of the service's worker (``{service}`` is replaced by its name), as Celery
    declares a queue it was not told of: a queue and a direct exchange of the same name (this
    repository's ``maintenance.{service}``, where beat sends the prune task)."""
    queue = conf.queue_name(service)
    retry = queue + ".retry"
    quorum = conf.queue_type == "quorum"
    own_queues = [queue, conf.parked_queue_name(service), *(q.replace("{service}", service) for q in host_queues)]
    levels = [level_name(n) for n in range(MAX_LEVEL + 1)] if quorum else []
    delayed = (DELAYS,) if quorum else ()
    configure = alternation(
        [conf.exchange, retry, *own_queues, *CELERY_SOURCES, *CELERY_TARGETS], raw=[*CELERY_QUEUES, *delayed]
    )
    write = alternation([conf.exchange, retry, *own_queues, *CELERY_TARGETS], raw=[*CELERY_QUEUES, *delayed])
    read = alternation([conf.exchange, retry, *own_queues, *CELERY_SOURCES], raw=[*CELERY_QUEUES, *delayed])
    topics = [TopicGrant(conf.exchange, alternation(owns), alternation(subscribes))]
    if quorum:
        # a delayed retry's routing key is 28 bits, one word each, then the queue name (rabbitmq.delays)
        own_delay = f"^([01]\\.){{{MAX_NUMBER_OF_BITS_TO_USE}}}{re.escape(queue)}$"
        topics += [TopicGrant(name, own_delay, ".*") for name in [*levels, CELERY_DELAYED_DELIVERY_EXCHANGE]]
    return Grants(
        service=service,
        user=user_of(service, conf),
        configure=configure,
        write=write,
        read=read,
        topics=tuple(topics),
        owns=tuple(sorted(owns)),
        subscribes=tuple(sorted(subscribes)),
    )


def grants(
    owners: Mapping[str, str],
    subscriptions: Mapping[str, Sequence[str]],
    conf: Settings,
    services: Iterable[str] = (),
    host_queues: Sequence[str] = (),
) -> list[Grants]:
    """Every service's grants: those that own a type (``{type: owner}``), those that subscribe
    (``{service: patterns}``), and ``services``; sorted by service."""
    owned = owned_types(owners, conf)
    names = sorted({*owned, *subscriptions, *services})
    return [grants_for(s, owned.get(s, []), subscriptions.get(s, []), conf, host_queues) for s in names]
