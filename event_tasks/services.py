"""Which services exist: every folder under the consumers package, plus every catalog owner."""
from __future__ import annotations

import importlib
import pkgutil

from . import catalog
from .conf import settings
from .errors import UnknownService


def consuming_services(package: str | None = None) -> list[str]:
    package = package or settings().consumers_package
    pkg = importlib.import_module(package)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg)


def known_services() -> list[str]:
    return sorted(set(consuming_services()) | {e.owner for e in catalog.all()})


def check_service(service: str | None) -> str:
    """Return ``service`` if it is known; :class:`UnknownService` (start-up error) if not."""
    known = known_services()
    if not service or service not in known:
        raise UnknownService(service, known)
    return service
