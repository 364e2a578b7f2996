"""``@consumer``: how a service says which events its handlers take, and how they are found.

A handler is a plain function ``handler(event: Event) -> None`` in
``consumers/<service>/handlers.py``. The decorator only marks it (so it stays directly
callable in tests); :func:`service_handlers` imports a service's handlers module and collects
the marked functions. The service's subscriptions (queue bindings) are derived from them.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from . import catalog
from .errors import ConfigurationError, UnknownEventType

F = TypeVar("F", bound=Callable[..., None])
_MARK = "__event_tasks_subscriptions__"


def consumer(event_type_or_pattern: str, *, deduplicate: bool = True) -> Callable[[F], F]:
    """Mark ``handler(event)`` as consuming an event type or a topic pattern (``*``, ``#``).

    Stack the decorator to consume several types with one function. With ``deduplicate`` (the
    default) the fabric records (event id, handler) in the service's database in the handler's
    own transaction and skips an event the handler already applied; pass ``False`` for handlers
    that are idempotent by themselves or write nowhere transactional.
    """
    if not isinstance(event_type_or_pattern, str) or not event_type_or_pattern:
        raise ConfigurationError("@consumer needs an event type or a topic pattern, e.g. "
                                 "@consumer('org.openedx.learning.certificate.created.v1')")

    def mark(func: F) -> F:
        patterns = list(getattr(func, _MARK, ()))
        patterns.append((event_type_or_pattern, deduplicate))
        setattr(func, _MARK, tuple(patterns))
        return func

    return mark


@dataclasses.dataclass(frozen=True)
class Handler:
    pattern: str
    func: Callable[..., None]
    deduplicate: bool = True

    @property
    def name(self) -> str:
        """Stable identity ``module.qualname`` (duplicate suppression keys on it)."""
        return f"{self.func.__module__}.{self.func.__qualname__}"


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


@cache
def _handlers_for(service_handlers: ServiceHandlers, event_type: str) -> tuple[Handler, ...]:
    from .topics import topic_matches

    return tuple(h for h in service_handlers.handlers if topic_matches(h.pattern, event_type))


def handlers_module(service: str, package: str | None = None) -> str:
    if package is None:
        from .conf import settings
        package = settings().consumers_package
    return f"{package}.{service}.handlers"


def service_handlers(service: str, package: str | None = None, schemas_package: str | None = None) -> ServiceHandlers:
    """Import ``<package>.<service>.handlers`` and collect its ``@consumer`` functions.

    A pattern that selects no event type of the catalog is a configuration error (a typo
    would otherwise subscribe to nothing, silently).
    """
    module_name = handlers_module(service, package)
    if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is None or importlib.util.find_spec(module_name) is None:
        return ServiceHandlers(service, (), schemas_package)
    module = importlib.import_module(module_name)
    found: list[Handler] = []
    for value in vars(module).values():
        if callable(value) and getattr(value, "__module__", None) == module.__name__:
            for pattern, deduplicate in getattr(value, _MARK, ()):
                found.append(Handler(pattern, value, deduplicate))
    for h in found:
        if not catalog.matching(h.pattern, schemas_package):
            raise UnknownEventType(h.pattern, f"Handler {h.name} of service {service!r} subscribes to it, "
                                              "but no event type in the catalog matches. Fix the name or add the type to schemas/.")
    found.sort(key=lambda h: (h.func.__code__.co_firstlineno, h.pattern))
    return ServiceHandlers(service, tuple(found), schemas_package)
