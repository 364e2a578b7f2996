"""``@consumer``: how a service says which events its handlers take, and how they are found.

A handler is a plain function ``handler(event: Event) -> None`` in the ``handlers`` module
(``EVENT_TASKS_HANDLERS_MODULE``) of any installed Django app, found the way Celery's
``autodiscover_tasks`` finds tasks: every installed app's module is imported, and every marked
function in its namespace counts, including functions imported into it from elsewhere. The
decorator only marks the function, so it stays directly callable in tests.

Which service a handler belongs to: the service of this process (``EVENT_TASKS_SERVICE``), unless
its app's ``AppConfig`` says otherwise with ``event_tasks_service = "<service>"`` (a monorepo
that installs several services' apps in one tooling process, like this repository's demo).

A service's subscriptions (queue bindings) are derived from its handlers, never listed twice.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import threading
from collections.abc import Callable, Iterable
from functools import cache
from types import ModuleType
from typing import TypeVar

from . import catalog
from .conf import check_service_name, settings
from .errors import ConfigurationError, UnknownEventType
from .topics import topic_matches

F = TypeVar("F", bound=Callable[..., None])
_MARK = "__event_tasks_subscriptions__"
ExceptionTypes = tuple[type[BaseException], ...]


def consumer(
    event_type_or_pattern: str,
    *,
    name: str | None = None,
    deduplicate: bool = True,
    max_retries: int | None = None,
    retry_for: Iterable[type[BaseException]] | None = None,
    dont_retry: Iterable[type[BaseException]] = (),
    time_limit: float | None = None,
    batch: int | None = None,
    batch_wait: float = 0.05,
    ordered: bool = False,
) -> Callable[[F], F]:
    """Mark ``handler(event)`` as consuming an event type or a topic pattern (``*``, ``#``).

    Stack the decorator to consume several types with one function.

    * ``name``: the handler's stable identity (default ``module.qualname``). Duplicate suppression
      keys on it, so give one before you rename or move a function that has run in production.
    * ``deduplicate`` (default on): record (event id, name) in the service's database in the
      handler's own transaction and skip an event the handler already applied.
    * ``max_retries``: retries of a failing delivery while this handler fails (default
      ``EVENT_TASKS_MAX_RETRIES``), then the event becomes a ``max_retries`` dead letter.
    * ``retry_for`` (default ``(Exception,)``) / ``dont_retry``: exceptions that are retried, and
      exceptions that send the event straight to the dead letters (``not_retried``).
    * ``time_limit``: seconds this handler may run (default ``EVENT_TASKS_HANDLER_TIME_LIMIT``); a
      delivery's hard limit is the largest limit of the handlers it runs.
    * ``batch``: the handler takes a list of up to ``batch`` events (``handler(events)``), applied
      in one transaction with one bulk duplicate mark; the worker waits up to ``batch_wait``
      seconds to fill a batch. A batch that fails is split into single deliveries (``batching``).
      A batched type has no other handler in its service.
    * ``ordered``: events of this type with the same ``key`` are applied in the order the worker
      took them from the queue, one at a time per key, whatever the pool's concurrency; a failing
      event holds back the later events of its key (only those) through its retries, and its dead
      letter says what it held back (``consume.ordering``, docs/ordering.md). All the handlers of
      an event type in a service run in one delivery, so one ordered handler orders the type.
    """
    if not isinstance(event_type_or_pattern, str) or not event_type_or_pattern:
        raise ConfigurationError(
            "@consumer needs an event type or a topic pattern, e.g. "
            "@consumer('org.openedx.learning.certificate.created.v1')"
        )
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigurationError("@consumer(name=...) must be a non-empty string")
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise ConfigurationError("@consumer(max_retries=...) must be a whole number ≥ 0")
    if time_limit is not None and (not isinstance(time_limit, (int, float)) or time_limit <= 0):
        raise ConfigurationError("@consumer(time_limit=...) must be a number of seconds > 0")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise ConfigurationError("@consumer(batch=...) must be a whole number ≥ 1")
    if not isinstance(batch_wait, (int, float)) or batch_wait <= 0:
        raise ConfigurationError("@consumer(batch_wait=...) must be a number of seconds > 0")
    if not isinstance(ordered, bool):
        raise ConfigurationError("@consumer(ordered=...) must be True or False")
    if ordered and batch is not None:
        raise ConfigurationError("@consumer(ordered=True) applies one event at a time per key: drop batch=...")
    retry = _exception_types("retry_for", (Exception,) if retry_for is None else retry_for)
    dont = _exception_types("dont_retry", dont_retry)
    unbound = Handler(
        event_type_or_pattern,
        None,
        deduplicate,
        name or "",
        max_retries,
        retry,
        dont,
        time_limit,
        batch,
        float(batch_wait),
        ordered,
    )

    def mark(func: F) -> F:
        if not callable(func):
            raise ConfigurationError(f"@consumer({event_type_or_pattern!r}) must decorate a function")
        setattr(func, _MARK, (*getattr(func, _MARK, ()), unbound))
        return func

    return mark


def _exception_types(option: str, values: Iterable[type[BaseException]] | type[BaseException]) -> ExceptionTypes:
    types = tuple(values) if not isinstance(values, type) else (values,)
    for value in types:
        if not (isinstance(value, type) and issubclass(value, BaseException)):
            raise ConfigurationError(f"@consumer({option}=...) takes exception classes, got {value!r}")
    return types


@dataclasses.dataclass(frozen=True)
class Handler:
    """A handler as the worker runs it: the function and its effective options.

    ``@consumer`` records one without its function (``func=None``) per decoration; discovery
    (:func:`collect`) binds the function it finds.
    """

    pattern: str
    func: Callable[..., None] | None
    deduplicate: bool = True
    name: str = ""
    max_retries: int | None = None
    retry_for: ExceptionTypes = (Exception,)
    dont_retry: ExceptionTypes = ()
    time_limit: float | None = None
    batch: int | None = None
    batch_wait: float = 0.05
    ordered: bool = False

    def __post_init__(self) -> None:
        if not self.name and self.func is not None:
            object.__setattr__(self, "name", f"{self.func.__module__}.{self.func.__qualname__}")

    def retries_allowed(self, default: int) -> int:
        return default if self.max_retries is None else self.max_retries

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_for) and not isinstance(exc, self.dont_retry)


@dataclasses.dataclass(frozen=True)
class ServiceHandlers:
    """What one service consumes: its handlers, patterns and the event types they select."""

    service: str
    handlers: tuple[Handler, ...]
    schemas_package: str | None = None

    @property
    def patterns(self) -> list[str]:
        return sorted({h.pattern for h in self.handlers})

    @property
    def event_types(self) -> list[str]:
        return sorted({e.name for h in self.handlers for e in catalog.matching(h.pattern, self.schemas_package)})

    def for_type(self, event_type: str) -> tuple[Handler, ...]:
        return _handlers_for(self, event_type)

    @property
    def batched(self) -> dict[str, Handler]:
        """Event types consumed by a batch handler, with that handler."""
        return {t: hs[0] for t in self.event_types if (hs := self.for_type(t)) and hs[0].batch}

    @property
    def ordered(self) -> frozenset[str]:
        """Event types with an ordered handler: their events are applied in order per key."""
        return frozenset(t for t in self.event_types if any(h.ordered for h in self.for_type(t)))


@cache
def _handlers_for(service_handlers: ServiceHandlers, event_type: str) -> tuple[Handler, ...]:
    # A function subscribed by two patterns that both match runs once (one name, one mark).
    chosen: dict[str, Handler] = {}
    for h in service_handlers.handlers:
        if topic_matches(h.pattern, event_type):
            chosen.setdefault(h.name, h)
    return tuple(chosen.values())


def collect(module: ModuleType) -> list[Handler]:
    """Every ``@consumer`` handler in ``module``'s namespace (defined there or imported into it)."""
    found: list[Handler] = []
    for value in vars(module).values():
        for unbound in getattr(value, _MARK, ()) if callable(value) else ():
            found.append(dataclasses.replace(unbound, func=value))
    return found


def build(service: str, handlers: Iterable[Handler], schemas_package: str | None = None) -> ServiceHandlers:
    """Check and order one service's handlers (the start-up checks of a worker).

    A pattern that selects no event type of the catalog is a configuration error (a typo would
    otherwise subscribe to nothing, silently); so are two different functions under one name.
    """
    unique: dict[tuple[Callable[..., None] | None, str], Handler] = {}
    for h in handlers:
        unique.setdefault((h.func, h.pattern), h)
    found = list(unique.values())
    names: dict[str, Callable[..., None] | None] = {}
    for h in found:
        if not catalog.matching(h.pattern, schemas_package):
            raise UnknownEventType(
                h.pattern,
                f"Handler {h.name} of service {service!r} subscribes to it, but no "
                "event type in the catalog matches. Fix the name or add the type to "
                "the catalog.",
            )
        other = names.setdefault(h.name, h.func)
        if other is not h.func:
            raise ConfigurationError(
                f"Two handlers of service {service!r} are named {h.name!r}; duplicate "
                "suppression keys on the name: give one of them another @consumer(name=...)"
            )
    found.sort(
        key=lambda h: (
            h.func.__module__,
            h.func.__code__.co_firstlineno if h.func is not None and hasattr(h.func, "__code__") else 0,
            h.pattern,
        )
    )
    built = ServiceHandlers(service, tuple(found), schemas_package)
    for event_type in built.event_types:
        chosen = built.for_type(event_type)
        if any(h.batch for h in chosen) and len(chosen) > 1:
            raise ConfigurationError(
                f"{event_type} has a batch handler in service {service!r} and other handlers too "
                f"({', '.join(h.name for h in chosen)}): a batched type has one handler"
            )
        if any(h.ordered for h in chosen) and any(h.batch for h in chosen):
            raise ConfigurationError(
                f"{event_type} has an ordered handler in service {service!r}: it cannot be batched"
            )
    return built


_lock = threading.Lock()


@cache
def discovered() -> dict[str | None, tuple[Handler, ...]]:
    """Handlers of every installed Django app, grouped by service (see the module docstring).

    The key ``None`` holds handlers of apps that name no service when this process has none
    (a tooling process of a one-service project).
    """
    from django.apps import apps

    module_name = settings().handlers_module
    groups: dict[str | None, list[Handler]] = {}
    seen: set[tuple[int, str]] = set()
    with _lock:
        for config in apps.get_app_configs():
            full = f"{config.name}.{module_name}"
            if importlib.util.find_spec(full) is None:
                continue
            module = importlib.import_module(full)  # errors in a handlers module surface, as Celery's do
            service = getattr(config, "event_tasks_service", None) or settings().service
            if service is not None:
                check_service_name(service)
            for handler in collect(module):
                key = id(handler.func), handler.pattern
                if key in seen:
                    continue
                seen.add(key)
                groups.setdefault(service, []).append(handler)
    return {k: tuple(v) for k, v in groups.items()}


def consuming_services() -> list[str]:
    """Services whose handlers this process can see (its own, or every one in a monorepo tool)."""
    return sorted(s for s in discovered() if s)


def service_handlers(service: str, schemas_package: str | None = None) -> ServiceHandlers:
    """``service``'s handlers, checked (see :func:`build`)."""
    return build(service, discovered().get(service, ()), schemas_package)


def orders_keys(service: str) -> bool:
    """Whether ``service`` has an ordered handler, as far as this process sees its handlers (its
    queue then has one active consumer at a time on RabbitMQ; ``consume.ordering``)."""
    return bool(service_handlers(service).ordered) if service in discovered() else False


def reset() -> None:
    """Forget discovered handlers (tests that change installed apps or settings call this)."""
    discovered.cache_clear()
    _handlers_for.cache_clear()
