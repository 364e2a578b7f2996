"""Who put an event on the broker: its AMQP ``user_id``, against the broker user of its type's owner.

With ``EVENT_TASKS_BROKER_USERS`` set (``{service: broker user}``) on RabbitMQ, the intake refuses
an event whose ``user_id`` is missing or is not the broker user of a service that publishes its
type (the catalog's owner, or the services ``EVENT_TASKS_SIGNING_OWNERS`` maps it to): a dead
letter ``not_owner`` naming the user it came with and the users expected. RabbitMQ itself refuses
a publish whose ``user_id`` is not the connection's user (``PRECONDITION_FAILED``), and the fabric's
publisher sets it on everything it sends (``brokers.rabbitmq.fanout``), so the property says which
broker user published the message; an event whose routing key was its owner's but whose task
header names another type is caught here too (the check is against the type the worker would run).

The consuming service's *own* broker user is accepted as well, whatever the headers say: its
retries, sent-back copies (lost pool process, time limit), batch splits and dead-letter replays
are republished by this service itself, through its retry exchange, with its own user. That is
safe because of what the broker lets that user do (``brokers.rabbitmq.users``): it writes into no
queue but its own (its retry exchange, bound to its queue only, and ``events`` for the types it
owns), so a message in this queue carrying this service's user came from this service. No header
is trusted for it: anyone can set a header, nobody but this service's user can set this ``user_id``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .. import catalog
from ..brokers.rabbitmq.users import publishers_of
from ..conf import Settings


@dataclasses.dataclass
class SenderCheck:
    """The intake's ``user_id`` check of one worker's service (``worker.prepare_worker`` makes it)."""

    service: str
    users: Mapping[str, str]  # service -> its broker user
    signing_owners: Mapping[str, tuple[str, ...]]
    _expected: dict[str, tuple[str, frozenset[str]]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, service: str, conf: Settings) -> SenderCheck | None:
        """The check for ``service``, or None when ``EVENT_TASKS_BROKER_USERS`` is unset (no check)."""
        if not conf.broker_users:
            return None
        return cls(service, dict(conf.broker_users), dict(conf.signing_owners or {}))

    def expected(self, event_type: str) -> tuple[str, frozenset[str]]:
        """The type's owner, and the broker users a copy of it may carry here."""
        if event_type not in self._expected:
            owner = catalog.get(event_type).owner
            services = (*publishers_of(owner, self.signing_owners), self.service)
            self._expected[event_type] = (owner, frozenset(self.users[s] for s in services if s in self.users))
        return self._expected[event_type]

    def problem(self, event_type: str, user_id: object) -> str | None:
        """None when ``user_id`` may carry ``event_type`` into this service's queue, else the dead letter's detail."""
        owner, users = self.expected(event_type)
        if isinstance(user_id, str) and user_id in users:
            return None
        came = f"broker user {user_id!r}" if isinstance(user_id, str) and user_id else "no user_id"
        wanted = ", ".join(sorted(users)) or "none (EVENT_TASKS_BROKER_USERS names no publisher of it)"
        return (
            f"published with {came}; {event_type} is owned by {owner!r}: expected the broker user of its "
            f"owner or of {self.service!r} (EVENT_TASKS_BROKER_USERS: {wanted})"
        )
