"""Putting one event's copies on the broker: the fabric's own connections, never the host's.

* :class:`RedisFanout`: one EVALSHA of ``fanout.lua`` reads the live subscription table (kombu's
  binding set) and LPUSHes a copy to each matching queue atomically, each with its own task id
  and delivery tag, through the default exchange (so retries, acks and restores stay in that
  service). A batch is a pipeline of such calls, up to ``CHUNK_EVENTS`` events each (the table
  read and each type's queues worked out once per call, one LPUSH per queue).
* :class:`KombuFanout` (RabbitMQ, and ``memory://`` in unit tests): one publish to the topic
  exchange ``events`` (the server routes), with publisher confirms on a connection of the
  fabric's own; each service's worker gives its copy its own task id on receipt.

Both keep their connection for the life of the process (one per PID: see ``publisher``), so
the host's Celery producer pool, transport options and confirm settings stay as the host set them.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import Any, NamedTuple, Protocol

from amqp import spec as amqp_spec
from amqp.exceptions import MessageNacked
from kombu import Connection, Producer

from .conf import Settings
from .message import QUEUE_SLOT, SERVICE_SLOT, RedisMessageTemplate, headers
from .topology import BINDING_KEY, broker_kind, events_exchange

FANOUT_LUA = resources.files(__package__).joinpath("fanout.lua").read_text()
# Events per script call of a batch (and bytes, roughly): Redis runs one script at a time, so a
# call stays short (~1 ms) and Lua's unpack() stays far below its argument limit.
CHUNK_EVENTS = 100
CHUNK_BYTES = 1 << 20


class Prepared(NamedTuple):
    """An event ready to go on the wire: its type, id, task body and what Flower shows."""

    event_type: str
    event_id: str
    body: str
    argsrepr: str


class BatchRefused(Exception):
    """Some messages of a batch were refused one by one (the broker is reachable): ``accepted`` are
    on the broker (confirmed), ``failed`` maps an index to its error, the rest were not attempted."""

    def __init__(self, accepted: list[int], failed: dict[int, BaseException]) -> None:
        self.accepted = accepted
        self.failed = failed
        first = min(failed)
        super().__init__(f"{len(failed)} message(s) of a batch refused, the first (#{first}): {failed[first]!r}")


class Fanout(Protocol):
    errors: tuple[type[BaseException], ...]
    connection_errors: tuple[type[BaseException], ...]   # the broker is unreachable (not: it refused a message)

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int | None:
        """Publish; return how many queues got a copy (``None`` when the broker routes)."""

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        """Publish one copy to one queue only (dead-letter replay)."""

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """Publish a batch in one round trip (Redis) or with one wait for every confirm (RabbitMQ)."""

    def close(self) -> None:
        """Release the connection."""


def script_args(args: list[str], event_type: str, slots: str, pieces: list[str]) -> None:
    """Append one event to ``fanout.lua``'s arguments: its type, its slots, its message cut at them
    (the script only joins pieces: cutting a 2 KB message in Lua cost ~6 µs per event)."""
    args.append(event_type)
    args.append(slots)
    args += pieces


class RedisFanout:
    """Per-queue copies pushed atomically by a Lua script reading the live binding set."""

    def __init__(self, url: str, transport_options: Mapping[str, Any], conf: Settings) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        if url.startswith("redis+socket://"):
            url = "unix://" + url[len("redis+socket://"):]
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=conf.publish_timeout,
            socket_timeout=conf.publish_timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), conf.publish_retries),
            retry_on_timeout=True,
        )
        self._single: Any = None   # the client of single sends, connected on first use
        self.keyprefix = transport_options.get("global_keyprefix", "") or ""
        self.binding_key = self.keyprefix + BINDING_KEY.format(exchange=conf.exchange)
        self.queue_prefix = conf.queue_prefix
        self.script = self.client.register_script(FANOUT_LUA)
        self.template = RedisMessageTemplate()
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self.connection_errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> int:
        args = [self.queue_prefix, self.keyprefix]
        script_args(args, event_type, self.template.SLOTS, self.template.pieces(event_type, event_id, body, argsrepr))
        return self.script(keys=[self.binding_key], args=args, client=self.single())[0]

    def single(self) -> Any:
        """A client that keeps one connection (locked per command) on the same pool: a send does not
        take a connection from the pool and give it back (~7% of a send, measured). Connected on
        first use, so a publisher can be built while the broker is down."""
        single = self._single
        if single is None:
            single = self._single = self.client.__class__(connection_pool=self.client.connection_pool,
                                                          single_connection_client=True)
        return single

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        message = self.template.render(event_type, event_id, body, argsrepr)
        self.client.lpush(self.keyprefix + queue, message.replace(SERVICE_SLOT, service).replace(QUEUE_SLOT, queue))

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """One round trip: a pipeline of script calls, each for a chunk of events (their copies
        pushed atomically, one LPUSH per queue); a chunk the broker refuses fails alone."""
        pipe = self.client.pipeline(transaction=False)
        chunks: list[range] = []
        start, size = 0, 0
        for i, item in enumerate(batch):
            size += len(item.body)
            if i + 1 == len(batch) or i + 1 - start >= CHUNK_EVENTS or size >= CHUNK_BYTES:
                args: list[str] = [self.queue_prefix, self.keyprefix]
                for j in range(start, i + 1):
                    script_args(args, batch[j].event_type, self.template.SLOTS, self.template.pieces(*batch[j]))
                self.script(keys=[self.binding_key], args=args, client=pipe)
                chunks.append(range(start, i + 1))
                start, size = i + 1, 0
        results = pipe.execute(raise_on_error=False)
        counts: list[int | None] = [None] * len(batch)
        failed: dict[int, BaseException] = {}
        for chunk, result in zip(chunks, results):
            for j, i in enumerate(chunk):
                if isinstance(result, Exception):
                    failed[i] = result
                else:
                    counts[i] = result[j]
        if failed:
            if len(failed) == len(batch):
                raise failed[0]
            raise BatchRefused([i for i in range(len(batch)) if i not in failed], failed)
        return counts

    def close(self) -> None:
        if self._single is not None:
            self._single.close()
        self.client.close()


class KombuFanout:
    """One publish to the topic exchange on a connection of the fabric's own, with confirms."""

    def __init__(self, url: str, transport_options: Mapping[str, Any], conf: Settings,
                 transport: Any = None) -> None:
        options = dict(transport_options)
        if broker_kind(url) == "amqp":
            options["confirm_publish"] = True
        self.connection = Connection(url, transport=transport, transport_options=options,
                                     connect_timeout=conf.publish_timeout)
        self.exchange = events_exchange(conf.exchange)
        self.retry_policy = {"max_retries": conf.publish_retries, "interval_start": 0,
                             "interval_step": 0.2, "interval_max": 1.0}
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self.confirm_timeout = max(1.0, conf.publish_timeout * (conf.publish_retries + 1))
        from kombu.exceptions import KombuError, OperationalError

        self.errors = (*self.connection.connection_errors, *self.connection.channel_errors, KombuError, OSError)
        self.connection_errors = (*self.connection.connection_errors, OperationalError, OSError)

    @contextlib.contextmanager
    def producer(self) -> Iterator[Producer]:
        """The fabric's producer (confirms on), held for the duration of the block."""
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self.connection)
            yield self._producer

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.producer() as producer:
            producer.publish(
                body, exchange=self.exchange, routing_key=event_type,
                headers=headers(event_type, event_id, event_id, argsrepr),
                content_type="application/json", content_encoding="utf-8",
                delivery_mode=2, correlation_id=event_id, declare=[self.exchange],
                retry=True, retry_policy=self.retry_policy,
            )
            _count_publish(producer.channel)
        return None

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        """Publish every message, then wait once for the broker's confirms of all of them.

        kombu (py-amqp) waits for each confirm before the next publish; here the messages go out
        back to back on the producer's channel and the confirms (``multiple`` acks included) are
        collected afterwards. A nack, or a connection lost before every confirm, is an error for
        the whole batch: the caller sends it again and the consumers suppress the duplicates.
        """
        if not batch:
            return []
        with self.producer() as producer:
            producer.maybe_declare(self.exchange)
            channel = producer.channel
            confirming = hasattr(channel, "_basic_publish")   # py-amqp (RabbitMQ); memory:// has no confirms
            if not confirming:
                for item in batch:
                    self.publish(*item)
                return [None] * len(batch)
            if not channel._confirm_selected:
                channel._confirm_selected = True
                channel.confirm_select()
            first = getattr(channel, "_event_tasks_sequence", 0) + 1
            refused: BaseException | None = None
            for index, item in enumerate(batch):
                try:
                    message = channel.prepare_message(
                        item.body, 0, "application/json", "utf-8",
                        headers(item.event_type, item.event_id, item.event_id, item.argsrepr),
                        {"delivery_mode": 2, "correlation_id": item.event_id})
                    channel._basic_publish(message, exchange=self.exchange.name, routing_key=item.event_type)
                except self.connection_errors:
                    raise
                except Exception as exc:  # noqa: BLE001 - this message is refused (e.g. a routing key over 255 bytes)
                    if index == 0:
                        raise
                    refused = exc
                    break
                _count_publish(channel)   # per message: a batch cut short by a refused message keeps the count
            last = channel._event_tasks_sequence
            acked = {"upto": first - 1}

            def on_confirm(method: Any, delivery_tag: int = 0, multiple: bool = False, *_: Any) -> None:
                if method == amqp_spec.Basic.Nack:
                    raise MessageNacked()
                acked["upto"] = max(acked["upto"], delivery_tag)

            while acked["upto"] < last:
                channel.wait([amqp_spec.Basic.Ack, amqp_spec.Basic.Nack], callback=on_confirm,
                             timeout=self.confirm_timeout)
        if refused is not None:
            raise BatchRefused(list(range(last - first + 1)), {last - first + 1: refused})
        return [None] * len(batch)

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        with self.producer() as producer:
            producer.publish(
                body, exchange="", routing_key=queue,
                headers=headers(event_type, event_id, f"{event_id}:{service}", argsrepr),
                content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                correlation_id=f"{event_id}:{service}", retry=True, retry_policy=self.retry_policy,
            )
            _count_publish(producer.channel)

    def close(self) -> None:
        with self._lock:
            self._producer = None
            self.connection.release()


def _count_publish(channel: Any) -> None:
    """Keep the channel's publish sequence (the delivery tags its confirms carry) for batches."""
    channel._event_tasks_sequence = getattr(channel, "_event_tasks_sequence", 0) + 1


def fanout_for(url: str, transport_options: Mapping[str, Any], conf: Settings) -> Fanout:
    """The fan-out for a broker URL (``ConfigurationError`` for a broker the fabric does not run on)."""
    if broker_kind(url) == "redis":
        return RedisFanout(url, transport_options, conf)
    return KombuFanout(url, transport_options, conf)
