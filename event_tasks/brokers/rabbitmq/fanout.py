"""Fan-out on RabbitMQ (and ``memory://`` in unit tests): the broker routes.

One publish to the topic exchange ``events`` per event, with publisher confirms, on a connection
of the fabric's own; each service's worker gives its copy its own task id on receipt. A batch is
published back to back and its confirms collected once.

On a cluster (docs/cluster.md) the connection takes the host's failover list (``amqp://n1;amqp://n2``
with ``broker_failover_strategy``) and moves to the next node when its node goes. A publish is
``mandatory``: one that no binding routes comes back (``basic.return``) and counts as "no
subscriber" (0 copies), as on Redis. A nack (a quorum queue's leader changing) or a connection lost
before the confirm sends the same message again, on another node if need be: a copy that did
arrive twice is a duplicate every consumer suppresses by the event id.

Every message it publishes (events, and the workers' retries and sent-back copies, which go out on
its producer) carries the AMQP ``user_id`` of the connection's user: RabbitMQ refuses a message
whose ``user_id`` is not the user of the connection it came on, so a consumer can tell which
service's broker user put it on the broker (``EVENT_TASKS_BROKER_USERS``, docs/broker-users.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from amqp import spec as amqp_spec
from amqp.exceptions import MessageNacked
from kombu import Connection, Exchange, Producer

from ...conf import Settings
from ...errors import BatchRefused, QueueMissing
from ..message import Prepared, headers
from ..topology import broker_kind, events_exchange, retry_exchange_name

if TYPE_CHECKING:
    from amqp import Message as AMQPMessage
    from kombu.message import Message
    from kombu.transport.base import Transport

log = logging.getLogger(__name__)


class _ConfirmingChannel(Protocol):
    """py-amqp's channel as :meth:`KombuFanout.publish_many` drives it: amqp's stubs lack its private
    half (``_confirm_selected``, ``_basic_publish``), and the sequence is the fabric's own attribute."""

    _confirm_selected: bool
    _event_tasks_sequence: int

    def confirm_select(self, nowait: bool = ...) -> None: ...

    def prepare_message(
        self,
        body: bytes | str,
        priority: int | None = ...,
        content_type: str | None = ...,
        content_encoding: str | None = ...,
        headers: dict[str, object] | None = ...,
        properties: dict[str, object] | None = ...,
    ) -> AMQPMessage: ...

    def _basic_publish(
        self, msg: AMQPMessage, exchange: str = ..., routing_key: str = ..., mandatory: bool = ...
    ) -> None: ...

    def wait(
        self, method: list[tuple[int, int]], callback: Callable[..., None] | None = ..., timeout: float | None = ...
    ) -> object: ...


class UserProducer(Producer):
    """A kombu producer that stamps each message with ``user_id`` (unless the caller gave one):
    Celery's retries and the sent-back copies go out on it without knowing of the property."""

    user_id: str | None = None

    def publish(self, *args: Any, **kwargs: Any) -> None:  # Any: kombu's own arguments, passed through
        if self.user_id is not None:
            kwargs.setdefault("user_id", self.user_id)
        super().publish(*args, **kwargs)


def connection_user(connection: Connection) -> str | None:
    """The user a kombu connection logs in as (``guest`` for an AMQP URL that names none)."""
    user = connection.userid or connection.transport.default_connection_params.get("userid")
    return str(user) if user else None


def _confirming(channel: object) -> TypeGuard[_ConfirmingChannel]:
    """py-amqp (RabbitMQ) has ``_basic_publish``; memory:// has no confirms."""
    return hasattr(channel, "_basic_publish")


class KombuFanout:
    """One publish to the topic exchange on a connection of the fabric's own, with confirms."""

    def __init__(
        self,
        url: str,
        transport_options: Mapping[str, object],
        conf: Settings,
        transport: str | type[Transport] | None = None,
        failover_strategy: str | None = None,
    ) -> None:
        options = dict(transport_options)
        self.amqp = broker_kind(url) == "amqp"
        if self.amqp:
            options["confirm_publish"] = True
        self.connection = Connection(
            url,
            transport=transport,
            transport_options=options,
            connect_timeout=conf.publish_timeout,
            failover_strategy=failover_strategy or "round-robin",
        )
        self.exchange = events_exchange(conf.exchange)
        self.retries = conf.publish_retries
        self.retry_policy = {
            "max_retries": conf.publish_retries,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 1.0,
            "retry_errors": (MessageNacked,),  # kombu's ensure() sends it again on the same connection
        }
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._returned: set[str] = set()  # routing keys the broker sent back (no queue bound), per publish
        self.confirm_timeout = max(1.0, conf.publish_timeout * (conf.publish_retries + 1))
        from kombu.exceptions import KombuError, OperationalError

        self.errors: tuple[type[BaseException], ...] = (
            *self.connection.connection_errors,
            *self.connection.channel_errors,
            KombuError,
            OSError,
            MessageNacked,
            QueueMissing,
        )
        self.connection_errors: tuple[type[BaseException], ...] = (
            *self.connection.connection_errors,
            OperationalError,
            OSError,
        )
        self.resend_errors: tuple[type[BaseException], ...] = (MessageNacked, *self.connection_errors)

    @contextlib.contextmanager
    def producer(self) -> Iterator[Producer]:
        """The fabric's producer (confirms on), held for the duration of the block."""
        with self._lock:
            if self._producer is None:
                producer = UserProducer(self.connection, on_return=self._on_return)
                producer.user_id = self.user_id()
                self._producer = producer
            yield self._producer

    def user_id(self) -> str | None:
        """The ``user_id`` of what this publishes: the connection's user on RabbitMQ, else none."""
        return connection_user(self.connection) if self.amqp else None

    def retry_exchange(self, service: str) -> str:
        """Where a copy for one service's queue goes: its retry exchange on RabbitMQ (0017); memory: ``""``."""
        return retry_exchange_name(service) if self.amqp else ""

    def _on_return(self, exc: Exception, exchange: Exchange | str, routing_key: str, message: Message) -> None:
        self._returned.add(routing_key)

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish; 0 when no queue is bound for the type (the broker returned it), else ``None`` (routed)."""
        try:
            with self.producer() as producer:
                self._returned.clear()
                self._publish_on(producer, event_type, event_id, body, argsrepr)
                return 0 if event_type in self._returned else None
        except self.errors:
            self._forget()
            raise

    def _forget(self) -> None:
        """After a publish that failed for good: the next one starts on a new connection and channel
        (a channel RabbitMQ keeps nacking, or a connection kombu still thinks alive, is not reused)."""
        with self._lock:
            self._producer = None
            try:
                self.connection.collect()
            except Exception:  # already broken: nothing more to release
                log.debug("releasing a failed connection failed", exc_info=True)

    def _publish_on(self, producer: Producer, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        producer.publish(
            body,
            mandatory=True,
            confirm_timeout=self.confirm_timeout,
            exchange=self.exchange,
            routing_key=event_type,
            headers=headers(event_type, event_id, event_id, argsrepr),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            correlation_id=event_id,
            declare=[self.exchange],
            retry=True,
            retry_policy=self.retry_policy,
        )
        _count_publish(producer.channel)

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """Publish every message, then wait once for the broker's confirms of all of them.

        kombu (py-amqp) waits for each confirm before the next publish; here the messages go out
        back to back on the producer's channel and the confirms (``multiple`` acks included) are
        collected afterwards. A nack, or a connection lost before every confirm, sends the whole
        batch again (on the next node of a failover list, up to ``EVENT_TASKS_PUBLISH_RETRIES``
        times): the consumers suppress the copies that had arrived. Returns 0 for an event no queue
        is bound for, ``None`` for a routed one.
        """
        if not batch:
            return []
        for attempt in range(self.retries + 1):
            try:
                return self._publish_batch(batch)
            except self.resend_errors as exc:
                if attempt == self.retries:
                    self._forget()
                    raise
                log.warning("a batch of %d events was not confirmed (%r); sending it again", len(batch), exc)
                self._reconnect()
        raise AssertionError("unreachable")  # the loop returns or raises

    def _reconnect(self) -> None:
        """A fresh connection (the next node of a failover list when this one is gone) and producer."""
        with self._lock:
            self._producer = None
            self.connection.collect()
            self.connection.ensure_connection(
                max_retries=self.retries, interval_start=0, interval_step=1, interval_max=1
            )

    def _publish_batch(self, batch: Sequence[Prepared]) -> list[int | None]:
        with self.producer() as producer:
            self._returned.clear()
            producer.maybe_declare(self.exchange)
            channel = producer.channel
            if not _confirming(channel):  # py-amqp (RabbitMQ); memory:// has no confirms
                for item in batch:  # on the producer held here (the lock is not re-entrant)
                    self._publish_on(producer, *item)
                return [None] * len(batch)
            if not channel._confirm_selected:
                channel._confirm_selected = True
                channel.confirm_select()
            first = getattr(channel, "_event_tasks_sequence", 0) + 1
            refused: BaseException | None = None
            user_id = self.user_id()
            for index, item in enumerate(batch):
                properties: dict[str, object] = {"delivery_mode": 2, "correlation_id": item.event_id}
                if user_id is not None:
                    properties["user_id"] = user_id
                try:
                    message = channel.prepare_message(
                        item.body,
                        0,
                        "application/json",
                        "utf-8",
                        headers(item.event_type, item.event_id, item.event_id, item.argsrepr),
                        properties,
                    )
                    channel._basic_publish(
                        message, exchange=self.exchange.name, routing_key=item.event_type, mandatory=True
                    )
                except self.connection_errors:
                    raise
                except Exception as exc:
                    if index == 0:
                        raise
                    refused = exc
                    break
                _count_publish(channel)  # per message: a batch cut short by a refused message keeps the count
            last = channel._event_tasks_sequence
            acked = {"upto": first - 1}

            def on_confirm(method: tuple[int, int], delivery_tag: int = 0, multiple: bool = False, *_: object) -> None:
                if method == amqp_spec.Basic.Nack:
                    raise MessageNacked()
                acked["upto"] = max(acked["upto"], delivery_tag)

            while acked["upto"] < last:
                channel.wait(
                    [amqp_spec.Basic.Ack, amqp_spec.Basic.Nack], callback=on_confirm, timeout=self.confirm_timeout
                )
        if refused is not None:
            raise BatchRefused(list(range(last - first + 1)), {last - first + 1: refused})
        return [0 if item.event_type in self._returned else None for item in batch]

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.producer() as producer:
            self._returned.clear()
            producer.publish(
                body,
                mandatory=True,
                confirm_timeout=self.confirm_timeout,
                exchange=self.retry_exchange(service),
                routing_key=queue,
                headers=headers(event_type, event_id, f"{event_id}:{service}", argsrepr),
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                correlation_id=f"{event_id}:{service}",
                retry=True,
                retry_policy=self.retry_policy,
            )
            _count_publish(producer.channel)
            if queue in self._returned:
                raise QueueMissing(queue)

    def close(self) -> None:
        with self._lock:
            self._producer = None
            self.connection.release()


def _count_publish(channel: Any) -> None:  # Any: any kombu channel; the sequence is an attribute of the fabric's own
    """Keep the channel's publish sequence (the delivery tags its confirms carry) for batches."""
    channel._event_tasks_sequence = getattr(channel, "_event_tasks_sequence", 0) + 1
