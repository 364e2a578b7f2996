"""``events queues migrate``: a service's queue to another type (classic <-> quorum) while producers send.

RabbitMQ changes neither a queue's type nor its arguments in place, and ``events.<service>`` keeps
its name. With the service's workers stopped, the messages go through a temporary queue
``events.<service>.migrating`` of the target type: (1) bind it as the service queue is bound (on
``events`` by the subscriptions, on ``celery_delayed_delivery`` by the queue's own key); (2) unbind
the service queue; (3) move its messages over; (4) delete it, empty, and declare it again
(``topology.service_queue``, ``declare``); (5) unbind the temporary queue, move its messages back,
delete it. One of the two queues is bound at every instant. A move publishes each message with
confirms and acks the original after the confirm; what an event got in both queues while both were
bound (or a message confirmed and not acked when a run was killed) is found by reading the
destination up to a marker put at its end, and dropped from the move. A run after an interruption
goes on from what the broker has; ``--to`` the old type rolls back. docs/migrating-queues.md.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable

from amqp import Channel, Message
from amqp import Connection as AMQPConnection
from amqp.exceptions import NotFound, PreconditionFailed, ResourceLocked
from kombu import Connection, Queue
from kombu.transport.native_delayed_delivery import CELERY_DELAYED_DELIVERY_EXCHANGE

from ..brokers.rabbitmq.api import ManagementAPI
from ..brokers.rabbitmq.delays import delivery_binding
from ..brokers.topology import declare, parked_queue, passive_declare, service_queue
from ..conf import settings
from ..errors import ManagementAPIUnavailable, QueueMigrationRefused
from ..handlers import orders_keys
from .live_queues import live_queue, on_rabbitmq

TEMPORARY_SUFFIX = ".migrating"
MARKER_HEADER = "event_tasks_migration_marker"  # the end of what a queue held when a move began
BROKER_HEADERS = ("x-delivery-count",)  # set by RabbitMQ on a redelivery: not the message's own
PROGRESS_EVERY = 1000
ATTEMPTS = 6  # looks at a queue before giving up on deleting it
QUIET = 1.0  # seconds a queue stays empty before it is deleted
CONFIRM_TIMEOUT = 30.0


def temporary_queue_name(service: str) -> str:
    return settings().queue_name(service) + TEMPORARY_SUFFIX


def live_bindings(connection: Connection, queues: Iterable[str]) -> dict[str, dict[str, set[str]]] | None:
    """``{exchange: {queue: routing keys}}`` of ``queues`` on ``events`` and ``celery_delayed_delivery``
    (the management API), or None where it does not answer."""
    conf = settings()
    api = ManagementAPI.for_broker(connection.as_uri(include_password=True), conf.rabbitmq_management_url)
    wanted = set(queues)
    found: dict[str, dict[str, set[str]]] = {}
    try:
        for exchange in (conf.exchange, CELERY_DELAYED_DELIVERY_EXCHANGE):
            rows = api.bindings(exchange)
            found[exchange] = {q: {key for key, name in rows if name == q} for q in wanted}
    except ManagementAPIUnavailable:
        return None
    return found


def identity(message: Message) -> str:
    """What two copies of one publish share (body, properties, headers), whichever queue holds them."""
    digest = hashlib.sha256(message.body if isinstance(message.body, bytes) else message.body.encode())
    digest.update(json.dumps(_properties(message), sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def _properties(message: Message) -> dict[str, object]:
    properties = dict(message.properties)
    headers = {k: v for k, v in (properties.get("application_headers") or {}).items() if k not in BROKER_HEADERS}
    properties["application_headers"] = headers
    return properties


class Migration:
    """One run of ``events queues migrate`` for ``service``, on ``connection`` (RabbitMQ)."""

    def __init__(
        self,
        connection: Connection,
        service: str,
        target: str,
        subscriptions: list[str],
        out: Callable[[str], object],
        bound: dict[str, dict[str, set[str]]] | None = None,
    ) -> None:
        conf = settings()
        self.connection = connection
        self.service = service
        self.target = target
        self.subscriptions = sorted(set(subscriptions))
        self.out = out
        self.bound = bound or {}  # the management API's bindings, to unbind them all
        self.name = conf.queue_name(service)
        self.temporary = temporary_queue_name(service)
        self.exchange = conf.exchange
        self.queue = service_queue(service, self.subscriptions, target, single_active=orders_keys(service))
        self.amqp: AMQPConnection = connection.connection  # kombu's stubs: Any; py-amqp's on RabbitMQ
        self.channel = self.amqp.channel()  # declares, binds, unbinds (a move opens channels of its own)
        self.delayed = self._exchange_exists(CELERY_DELAYED_DELIVERY_EXCHANGE)
        self.moved = self.dropped = 0

    # -- the procedure ----------------------------------------------------------------------------
    def run(self) -> None:
        self._lock()
        main = live_queue(self.connection, self.queue)
        held = passive_declare(self.connection, self.temporary)
        for name, consumers in ((self.name, main.consumers if main else 0), (self.temporary, held[1] or 0)):
            if consumers:
                raise QueueMigrationRefused(
                    self.name,
                    f"{name} has {consumers} consumer(s): stop {self.service}'s workers first (producers may go on)",
                )
        if held[0] is None:
            if main is None:
                raise QueueMigrationRefused(
                    self.name, "it does not exist: `events declare` creates it of the type EVENT_TASKS_QUEUE_TYPE says"
                )
            if main.matches:
                if self.target == "quorum":
                    self._check_parked()
                declare(self.connection, [self.queue], prune=False)  # its parked queue and delay levels too
                self.out(f"{self.name} is already a {self.target} queue as the settings declare it: nothing to move")
                return
        self._check_parked()
        if main is not None and not main.matches:
            self.out(f"{self.name}: {main.queue_type}, {main.depth} message(s) waiting; to {self.target}")
            self._hold(main.queue_type)
        # Declared, or bound again (a run interrupted after step 2, rolled back with --to the old type).
        declare(self.connection, [self.queue], prune=False)
        if self.target != "quorum" and self.delayed:
            self._bind_delayed(self.name)
        keys = ", ".join(self.subscriptions) or "(no subscriptions)"
        self.out(f"declared {self.name} ({self.target}) <- {keys}: new events go to both queues")
        self._release()
        if self.target == "classic":
            parked = live_queue(self.connection, parked_queue(self.service))
            if parked is not None and not parked.depth:
                self._delete(parked.name, parked.queue_type)  # a classic queue parks nothing
        depth = passive_declare(self.connection, self.name)[0]
        self.out(
            f"done: {self.name} is a {self.target} queue holding {depth} message(s); {self.moved} moved, "
            f"{self.dropped} duplicate cop(ies) dropped"
        )

    def _hold(self, old_type: str) -> None:
        """Steps 1-4 up to the deletion: the temporary queue takes the events, then the messages."""
        if passive_declare(self.connection, self.temporary)[0] is None:
            self.channel.queue_declare(
                self.temporary, durable=True, auto_delete=False, arguments={"x-queue-type": self.target}
            )
        for key in self.subscriptions:
            self.channel.queue_bind(self.temporary, self.exchange, key)
        if self.delayed:
            self._bind_delayed(self.temporary)
        self.out(f"declared {self.temporary} ({self.target}) <- {', '.join(self.subscriptions)}")
        self._unbind(self.name)
        self.out(f"unbound {self.name}: new events go to {self.temporary} only")
        self._move(self.name, self.temporary)
        self._delete(self.name, old_type, spill=self.temporary)

    def _release(self) -> None:
        """Step 5: the service queue takes the events again, and the temporary queue's messages."""
        self._unbind(self.temporary)
        self.out(f"unbound {self.temporary}: new events go to {self.name} only")
        self._move(self.temporary, self.name)
        held = live_queue(self.connection, Queue(self.temporary, queue_arguments={"x-queue-type": self.target}))
        self._delete(self.temporary, held.queue_type if held else self.target, spill=self.name)

    # -- bindings ---------------------------------------------------------------------------------
    def _unbind(self, name: str) -> None:
        """Every binding of ``name`` on ``events`` and on the delivery exchange: the management API's
        when it answered, else the subscriptions' and the ``#.``-prefixed twins Celery's delayed
        delivery step adds to the queues of a quorum worker."""
        keys = set(self.bound.get(self.exchange, {}).get(name, set()))
        keys.update(self.subscriptions, ("#." + k for k in self.subscriptions if not k.startswith("#")))
        for key in sorted(keys):
            self.channel.queue_unbind(name, self.exchange, key)
        if self.delayed:
            own = delivery_binding(self.name).routing_key
            delayed = set(self.bound.get(CELERY_DELAYED_DELIVERY_EXCHANGE, {}).get(name, set())) | {own, "#." + own}
            for key in sorted(delayed):
                self.channel.queue_unbind(name, CELERY_DELAYED_DELIVERY_EXCHANGE, key)

    def _bind_delayed(self, name: str) -> None:
        """A retry waiting in the delay levels comes back by the service queue's key: to ``name`` too."""
        self.channel.queue_bind(name, CELERY_DELAYED_DELIVERY_EXCHANGE, delivery_binding(self.name).routing_key)

    # -- moving messages --------------------------------------------------------------------------
    def _move(self, source: str, destination: str) -> None:
        """Every message of ``source`` to ``destination``, less the twins of what ``destination`` holds.

        On channels of the move's own: RabbitMQ 3.10 keeps, per channel, the queue it last read by
        a name, and reading a queue declared again under that name (of another type) on the same
        channel fails the whole connection (541 INTERNAL_ERROR)."""
        reader, writer = self.amqp.channel(), self.amqp.channel()
        try:
            twins = self._read_up_to_marker(destination, reader, writer)
            moved = dropped = 0
            while (message := reader.basic_get(source, no_ack=False)) is not None:
                key = identity(message)
                if MARKER_HEADER in (message.properties.get("application_headers") or {}):
                    pass  # the marker of an interrupted run
                elif twins[key] > 0:
                    twins[key] -= 1
                    dropped += 1
                else:
                    _publish(writer, message, destination)
                    moved += 1
                    if moved % PROGRESS_EVERY == 0:
                        self.out(f"  moved {moved} message(s) {source} -> {destination}")
                reader.basic_ack(_tag(message))
        finally:
            for channel in (reader, writer):
                _close(channel, self.connection)
        self.moved += moved
        self.dropped += dropped
        twin_note = f", {dropped} duplicate cop(ies) dropped" if dropped else ""
        self.out(f"moved {moved} message(s) {source} -> {destination}{twin_note}")

    def _read_up_to_marker(self, name: str, reader: Channel, writer: Channel) -> collections.Counter[str]:
        """The identities of what ``name`` holds now: a marker is put at its end, and every message
        ahead of it is read and put back at the end (confirmed before it is acked)."""
        mark = uuid.uuid4().hex
        writer.basic_publish_confirm(
            Message(b"", delivery_mode=2, application_headers={MARKER_HEADER: mark}),
            exchange="",
            routing_key=name,
            mandatory=True,
            confirm_timeout=CONFIRM_TIMEOUT,
        )
        seen: collections.Counter[str] = collections.Counter()
        while True:
            message = reader.basic_get(name, no_ack=False)
            if message is None:
                raise QueueMigrationRefused(self.name, f"the marker put in {name} was taken: stop its consumers")
            found = (message.properties.get("application_headers") or {}).get(MARKER_HEADER)
            if found is None:
                seen[identity(message)] += 1
                _publish(writer, message, name)
            reader.basic_ack(_tag(message))
            if found == mark:
                return seen

    def _delete(self, name: str, queue_type: str, spill: str | None = None) -> None:
        """Delete ``name`` once it is unused and seen empty twice, :data:`QUIET` seconds apart (a
        binding nobody knows would still fill it); what still comes in is moved to ``spill``. A
        classic queue: RabbitMQ checks both again in the deletion. A quorum queue cannot: a message
        sent straight to it between the last look and the deletion goes with it (a warning counts it)."""
        quiet = False
        for _ in range(ATTEMPTS):
            depth, consumers = passive_declare(self.connection, name)
            if depth is None:
                return
            if consumers:
                raise QueueMigrationRefused(self.name, f"{name} has {consumers} consumer(s): stop them and run again")
            if depth:
                if spill is None:
                    raise QueueMigrationRefused(self.name, f"{name} holds {depth} message(s)")
                self._move(name, spill)
                quiet = False
                continue
            if not quiet:
                time.sleep(QUIET)  # anything still routed here shows by then
                quiet = True
                continue
            channel = self.amqp.channel()
            try:
                if queue_type == "quorum":
                    lost = channel.queue_delete(name)
                    if lost:
                        self.out(f"WARNING: {lost} message(s) reached {name} as it was deleted, and went with it")
                else:
                    channel.queue_delete(name, if_unused=True, if_empty=True)
            except PreconditionFailed:
                continue  # a message came in: move it too
            _close(channel, self.connection)
            self.out(f"deleted {name}")
            return
        raise QueueMigrationRefused(
            self.name,
            f"{name} keeps receiving messages after it was unbound: a binding this command does not know routes "
            "there (it knows the management API's bindings, else the handlers' patterns); nothing is lost and "
            f"{spill} is bound: remove that binding (`events topology verify --prune`) and run this again",
        )

    # -- checks -----------------------------------------------------------------------------------
    def _lock(self) -> None:
        """One run per service at a time: an exclusive queue, gone with this connection."""
        try:
            self.channel.queue_declare(self.temporary + ".lock", exclusive=True, auto_delete=True)
        except ResourceLocked:
            raise QueueMigrationRefused(self.name, "another `events queues migrate` of it is running") from None

    def _check_parked(self) -> None:
        """A parked queue (quorum) still holding messages is the dead letters no worker stored yet."""
        parked = parked_queue(self.service)
        live = live_queue(self.connection, parked)
        if live is None:
            return
        if self.target == "classic" and live.depth:
            raise QueueMigrationRefused(
                self.name,
                f"{parked.name} holds {live.depth} message(s) past the delivery limit that are not dead letters "
                f"yet: start one of {self.service}'s workers as it was (quorum) until it is empty, stop it, and "
                "run this again",
            )
        if not live.matches and not live.depth:
            self._delete(parked.name, live.queue_type)  # declared again with the service queue
        elif not live.matches:
            raise QueueMigrationRefused(
                self.name, f"{parked.name} is a {live.queue_type} queue holding {live.depth} message(s)"
            )

    def _exchange_exists(self, name: str) -> bool:
        channel = self.amqp.channel()
        try:
            channel.exchange_declare(name, "topic", passive=True)
        except NotFound:
            return False
        _close(channel, self.connection)
        return True

    def close(self) -> None:
        _close(self.channel, self.connection)


def _publish(channel: Channel, message: Message, destination: str) -> None:
    """``message`` to ``destination`` through the default exchange, confirmed (mandatory: a queue
    that is not there is an error, never a confirmed loss)."""
    channel.basic_publish_confirm(
        Message(message.body, **_properties(message)),
        exchange="",
        routing_key=destination,
        mandatory=True,
        confirm_timeout=CONFIRM_TIMEOUT,
    )


def _tag(message: Message) -> int:
    tag = message.delivery_tag
    assert tag is not None  # a message basic_get returned has one
    return tag


def _close(channel: Channel, connection: Connection) -> None:
    try:
        channel.close()
    except connection.connection_errors + connection.channel_errors:
        pass


def migrate(
    connection: Connection, service: str, target: str, subscriptions: list[str], out: Callable[[str], object]
) -> None:
    """Move ``service``'s queue to ``target`` (see the module docstring). ``subscriptions``: its
    handlers' patterns, used where the management API does not give the live bindings."""
    if not on_rabbitmq(connection):
        raise QueueMigrationRefused(settings().queue_name(service), "Redis has one kind of queue (RabbitMQ only)")
    conf = settings()
    name, temporary = conf.queue_name(service), temporary_queue_name(service)
    bound = live_bindings(connection, [name, temporary])
    if bound is not None:
        live = bound[conf.exchange][name] | bound[conf.exchange][temporary]
        keys = {k for k in live if not (k.startswith("#.") and k[2:] in live)} or set(subscriptions)
        out(f"subscriptions of {name} (the broker's bindings): {', '.join(sorted(keys)) or '-'}")
    elif subscriptions:
        keys = set(subscriptions)
        out(
            f"subscriptions of {name} ({service}'s handlers; the management API did not answer): {', '.join(sorted(keys))}"
        )
    else:
        raise QueueMigrationRefused(
            name,
            f"its subscriptions are unknown here: the management API did not answer and no handlers of {service} "
            f"are installed; run the command in {service}'s project (EVENT_TASKS_SERVICE={service}) or enable the "
            "management API (EVENT_TASKS_RABBITMQ_MANAGEMENT_URL)",
        )
    migration = Migration(connection, service, target, sorted(keys), out, bound)
    try:
        migration.run()
    finally:
        migration.close()
