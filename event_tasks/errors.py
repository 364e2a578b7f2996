"""Every error a user of event-tasks can hit: one base class, one subclass per situation; each
message says what went wrong *and* what to do about it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Self


class EventTasksError(Exception):
    """Base class of every error raised by event-tasks. Subclasses keep their constructor arguments so an
    error survives pickling intact (Celery copies task exceptions; one that does not round-trip is replaced
    by its base class)."""

    _init_args: tuple[tuple[object, ...], dict[str, object]]

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        self = super().__new__(cls, *args)
        self._init_args = (args, kwargs)
        return self

    def __reduce__(self) -> tuple[Callable[..., EventTasksError], tuple[object, ...]]:
        args, kwargs = getattr(self, "_init_args", (self.args, {}))
        if kwargs:
            return (_rebuild, (type(self), args, kwargs))
        return (type(self), args)


def _rebuild(cls: type[EventTasksError], args: tuple[object, ...], kwargs: dict[str, object]) -> EventTasksError:
    return cls(*args, **kwargs)


class ConfigurationError(EventTasksError):
    """The fabric is misconfigured; raised at start-up, never silently ignored."""


class UnknownService(ConfigurationError):
    """``EVENT_TASKS_SERVICE`` is missing or not a service name."""

    def __init__(self, service: str | None):
        self.service = service
        if not service:
            msg = (
                "EVENT_TASKS_SERVICE is not set: every process that sends or consumes events must say which "
                "service it is. Set EVENT_TASKS_SERVICE in the service's Django settings (e.g. 'lms')."
            )
        else:
            msg = (
                f"EVENT_TASKS_SERVICE={service!r} is not a service name: use lower-case letters, digits and "
                "underscores, starting with a letter (it names the service's queue, events.<service>)."
            )
        super().__init__(msg)


class EventQueueMismatch(ConfigurationError):
    """A worker consumes an event queue that is not its own service's: it could not run those events."""

    def __init__(self, queues: list[str], service: str | None):
        self.queues = queues
        self.service = service
        names = ", ".join(queues)
        if service is None:
            msg = (
                f"This worker consumes {names} but EVENT_TASKS_SERVICE is not set, so it has no handlers for them: "
                f"set EVENT_TASKS_SERVICE to the service that owns the queue (e.g. {queues[0].rsplit('.', 1)[-1]!r}) "
                "in the worker's settings, or drop the queue from -Q"
            )
        else:
            msg = (
                f"This worker is service {service!r} (EVENT_TASKS_SERVICE) but consumes {names}: another service's "
                "events would reach handlers that are not there. Drop it from -Q, and run each service's worker "
                "with that service's settings"
            )
        super().__init__(msg)


class RetentionTooShort(ConfigurationError):
    """Duplicate marks would be pruned while a copy of their event can still come back."""

    def __init__(self, setting: str, days: float, window: float, why: str):
        self.setting = setting
        self.days = days
        self.window = window
        super().__init__(
            f"{setting}={days:g} keeps duplicate marks for {days * 86400:.0f} s, but a message can still be "
            f"redelivered up to {window:.0f} s after it was first applied ({why}); pruning earlier would let a "
            f"redelivered copy run its handlers twice. Set {setting} to at least {window / 86400:.2f} days "
            "(a few days more is wise), or lower those limits. Nothing was pruned."
        )


class OpenedxEventsMissing(ConfigurationError):
    """``event_tasks.openedx`` was imported without the ``openedx`` extra installed."""

    def __init__(self, cause: str = ""):
        super().__init__(
            "event_tasks.openedx needs openedx-events: pip install 'event-tasks[openedx]' "
            "(openedx-events 10.5 on Python 3.11)" + (f" ({cause})" if cause else "")
        )


class UnknownEventType(EventTasksError):
    """An event type (or a subscription pattern) that the catalog does not define."""

    def __init__(self, event_type: str, hint: str = ""):
        self.event_type = event_type
        super().__init__(
            f"Unknown event type {event_type!r}: it is not in the catalog. "
            + (
                hint
                or "Define it with event_tasks.catalog.event_type(...) in a module of the catalog package "
                "(EVENT_TASKS_SCHEMAS_PACKAGE)."
            )
        )


class EventValidationError(EventTasksError):
    """A payload does not match its event type's schema. Nothing was published."""

    def __init__(self, event_type: str, errors: Mapping[str, object]):
        self.event_type = event_type
        self.errors = dict(errors)
        super().__init__(
            f"Invalid payload for event type {event_type!r}; nothing was published. Bad fields: {self.describe()}"
        )

    def describe(self) -> str:
        """``field: problem, …`` for every bad field."""
        return ", ".join(
            f"{name}: {_flatten(msg)}" for name, msg in sorted(self.errors.items(), key=lambda kv: str(kv[0]))
        )

    @property
    def fields(self) -> list[str]:
        return sorted(str(k) for k in self.errors)


class PayloadTooLarge(EventValidationError):
    def __init__(self, event_type: str, size: int, limit: int):
        self.size = size
        self.limit = limit
        super().__init__(
            event_type,
            {
                "_payload": [
                    f"{size} bytes encoded, the limit is {limit} bytes "
                    "(EVENT_TASKS_MAX_PAYLOAD_BYTES); send a reference instead of the content"
                ]
            },
        )


class PublishError(EventTasksError):
    """The broker did not accept the event after bounded retries. The event was not sent."""

    def __init__(self, event_type: str, event_id: str, cause: BaseException):
        self.event_type = event_type
        self.event_id = event_id
        self.cause = cause
        super().__init__(
            f"Could not publish event {event_id} of type {event_type!r}: {cause!r}. "
            "The broker is unreachable or refused it; retry later, or send inside "
            "transaction.atomic() so the outbox keeps it until the broker is back."
        )


class QueueMissing(EventTasksError):
    """RabbitMQ returned a message published straight to a queue that does not exist."""

    def __init__(self, queue: str):
        self.queue = queue
        super().__init__(
            f"RabbitMQ has no queue {queue!r}: nothing was delivered; declare it (`manage.py events declare` in "
            "the service's project) or check the service name"
        )


class ReplicasBehind(EventTasksError):
    """Redis took a publish but fewer replicas than ``EVENT_TASKS_REDIS_WAIT_REPLICAS`` confirmed it
    within ``EVENT_TASKS_REDIS_WAIT_TIMEOUT`` (``WAIT``); it reaches a sender as a
    :class:`PublishError`'s ``cause``, and the relay keeps the rows for its next round."""

    def __init__(self, acknowledged: int, wanted: int, timeout: float):
        self.acknowledged = acknowledged
        self.wanted = wanted
        self.timeout = timeout
        super().__init__(
            f"Redis took the event but only {acknowledged} of the {wanted} replica(s) EVENT_TASKS_REDIS_WAIT_REPLICAS "
            f"asks for confirmed it within {timeout:g} s (EVENT_TASKS_REDIS_WAIT_TIMEOUT), so a failover now could "
            "lose it: send it again with the same id (consumers suppress the copy) once the replicas are back; check "
            "them with INFO replication on the master, or set EVENT_TASKS_REDIS_WAIT_REPLICAS to at most the "
            "replicas that run"
        )


class MasterDeposed(EventTasksError):
    """Redis (behind Sentinel) took a publish, but by then the sentinels named another master: the
    node written to was deposed (a failover it did not see yet) and its writes will be dropped when
    it becomes a replica. It reaches a sender as a :class:`PublishError`'s ``cause``; the next
    attempt connects to the new master."""

    def __init__(self, written_to: str, master: str):
        self.written_to = written_to
        self.master = master
        super().__init__(
            f"Redis at {written_to} took the event, but the sentinels name {master} the master now (a failover): "
            "the old master drops what it took when it becomes a replica. Send it again with the same id "
            "(consumers suppress the copy): the next attempt goes to the new master"
        )


class InvalidEvent(EventTasksError):
    """A received message is not a readable event. It goes to the dead letters, never retried."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class DeadLettered(EventTasksError):
    """Raised by an event task after it stored the event in its service's dead letters."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"dead-lettered ({reason}): {detail}")


class NotReplayable(EventTasksError):
    """A dead letter whose message was never a readable event cannot be sent again."""

    def __init__(self, letter_id: int, reason: str):
        self.letter_id = letter_id
        super().__init__(
            f"Dead letter #{letter_id} ({reason}) holds no readable event to replay; inspect it "
            "with `events deadletters show` and discard it, or fix the producer and resend."
        )


def _flatten(msg: object) -> str:
    if isinstance(msg, Mapping):
        return "{" + ", ".join(f"{k}: {_flatten(v)}" for k, v in msg.items()) + "}"
    if isinstance(msg, (list, tuple)):
        return " ".join(_flatten(m) for m in msg)
    return str(msg)


class ManagementAPIUnavailable(EventTasksError):
    """The RabbitMQ management API did not answer (listing bindings and unacked counts needs it)."""

    def __init__(self, url: str, cause: str):
        self.url = url
        self.cause = cause
        super().__init__(
            f"The RabbitMQ management API at {url} did not answer ({cause}). Listing bindings needs it: "
            "enable it on the broker (`rabbitmq-plugins enable rabbitmq_management`) and set "
            "EVENT_TASKS_RABBITMQ_MANAGEMENT_URL = 'http://user:password@host:15672' if it is not on the "
            "broker's host at port 15672 with the broker's credentials."
        )


class BatchRefused(EventTasksError):
    """Some messages of a batch were refused one by one (the broker is reachable): ``accepted`` are
    on the broker (confirmed), ``failed`` maps an index to its error, the rest were not attempted.

    ``send_events`` and the relay turn it into a :class:`PublishError` (its ``cause``) or keep the
    refused rows in the outbox; it reaches a user only as that cause."""

    def __init__(self, accepted: list[int], failed: dict[int, BaseException]) -> None:
        self.accepted = accepted
        self.failed = failed
        first = min(failed)
        super().__init__(
            f"{len(failed)} message(s) of a batch refused, the first (#{first}): {failed[first]!r}; "
            f"the {len(accepted)} accepted are on the broker: send the others again once the "
            "cause is fixed (consumers suppress a duplicate)"
        )


class UnsupportedSignal(EventTasksError, TypeError):
    """A data type openedx-events cannot serialize (so neither can ``event_tasks.openedx``). Raised while the
    openedx catalog is generated; the signal is left out of it, and sending it through this backend fails as
    it would on openedx-events' own buses."""


class ExtraMissing(ConfigurationError):
    """A command needs a package of an optional extra that is not installed (raised when it runs, not at import)."""

    def __init__(self, what: str, package: str, extra: str, cause: str = ""):
        self.what, self.package, self.extra = what, package, extra
        super().__init__(
            f"{what} needs {package}: pip install 'event-tasks[{extra}]'" + (f" ({cause})" if cause else "")
        )


class NoCatalog(ConfigurationError):
    """``EVENT_TASKS_SCHEMAS_PACKAGE`` is not set: there is no default catalog."""

    def __init__(self) -> None:
        super().__init__(
            "EVENT_TASKS_SCHEMAS_PACKAGE is not set: name the package that holds your event types "
            "(e.g. 'myplatform.events') in the service's Django settings; every process that sends or consumes "
            "events needs it, and there is no default (the openedx-events types: 'event_tasks.openedx.catalog')."
        )


class InvalidSetting(ConfigurationError):
    """An ``EVENT_TASKS_*`` Django setting holds a value of the wrong type."""

    def __init__(self, setting: str, value: object, expected: str, default: object):
        self.setting, self.value, self.expected, self.default = setting, value, expected, default
        super().__init__(
            f"{setting} must be {expected}, not {type(value).__name__} ({value!r}): fix it in the service's "
            f"Django settings, or remove it for the default ({default!r}); docs/settings.md lists every setting."
        )


class BrokerUnavailable(EventTasksError):
    """The broker did not answer an operator command (connection refused, unknown host, timeout, a
    refused login). ``url`` is the broker URL as shown to a person: without its password."""

    def __init__(self, url: str, cause: str):
        self.url = url
        self.cause = cause
        super().__init__(
            f"The broker at {url} is not reachable ({cause}): check that it is running and reachable from "
            "this host, and that CELERY_BROKER_URL names it (host, port, credentials, virtual host)."
        )


class UnsupportedBroker(ConfigurationError):
    """A broker URL whose scheme event-tasks does not run on (``url`` shown without its password)."""

    def __init__(self, url: str):
        self.url = url
        scheme = url.split("://", 1)[0]
        super().__init__(
            (f"Unsupported broker {scheme!r} in CELERY_BROKER_URL ({url})" if url else "CELERY_BROKER_URL is not set")
            + ": event-tasks runs on Redis (redis://, rediss://, sentinel://) or RabbitMQ (amqp://, amqps://); "
            "set CELERY_BROKER_URL to one of those."
        )


class TablesMissing(ConfigurationError):
    """A database the command reads lacks the fabric's tables: its migrations never ran there."""

    def __init__(self, database: str, name: str, table: str):
        self.database = database
        self.table = table
        migrate = "manage.py migrate" + ("" if database == "default" else f" --database {database}")
        super().__init__(
            f"The fabric's tables are missing in database {database!r} ({name}; no table {table}): run {migrate}"
        )


class QueueTypeMismatch(ConfigurationError):
    """A fabric queue on RabbitMQ has another type, or other quorum arguments, than the settings
    declare (``EVENT_TASKS_QUEUE_TYPE``, ``EVENT_TASKS_QUORUM_DELIVERY_LIMIT``): RabbitMQ changes
    neither in place, and declaring the queue again fails. ``differences``: ``(argument, on the
    broker, declared)`` of each argument that differs, when the type is the same."""

    def __init__(
        self, queue: str, service: str, live: str, wanted: str, differences: tuple[tuple[str, str, str], ...] = ()
    ):
        self.queue = queue
        self.service = service
        self.live = live
        self.wanted = wanted
        self.differences = differences
        if live != wanted:
            what = f"is a {live} queue, but EVENT_TASKS_QUEUE_TYPE declares it {wanted}; a queue's type"
        else:
            shown = ", ".join(f"{arg} {have} (declared: {want})" for arg, have, want in differences)
            what = f"is a {live} queue with {shown}; a queue's arguments"
        super().__init__(
            f"RabbitMQ's queue {queue} {what} cannot change in place: stop {service}'s workers and run "
            f"`manage.py events queues migrate --service {service} --to {wanted}` (docs/migrating-queues.md)"
            + (f", or set EVENT_TASKS_QUEUE_TYPE = {live!r}" if live != wanted else "")
        )


class QueueMigrationRefused(EventTasksError):
    """``events queues migrate`` will not start or go on: ``why`` says what is in the way and what to do."""

    def __init__(self, queue: str, why: str):
        self.queue = queue
        self.why = why
        super().__init__(f"cannot migrate {queue}: {why}")


class SigningKeyInvalid(ConfigurationError):
    """A signing setting (this service's key, its id, the platform's public keys) cannot be used."""

    def __init__(self, setting: str, problem: str):
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting}: {problem}; fix it in the service's Django settings (docs/signing.md)")


class EndpointAuthMissing(ConfigurationError):
    """An HTTP endpoint (``events metrics``) lacks the credentials ``EVENT_TASKS_REQUIRE_ENDPOINT_AUTH`` requires."""
