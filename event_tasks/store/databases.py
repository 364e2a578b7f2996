"""Which Django database holds each service's fabric tables (dead letters, outbox, duplicate marks,
task results), for the operator commands that look across services (``status``, ``trace``).

Every service has its own database. A service's own processes read it as ``default``. An
operator's tooling process sees other services' databases through Django database aliases:
an alias named like the service (``DATABASES["lms"]``, how this repository's demo settings add
``<SERVICE>_DATABASE_URL`` to a tooling process), or an explicit mapping
``EVENT_TASKS_SERVICE_DATABASES = {"lms": "lms_replica"}`` (a read replica is enough).
A service without a reachable database is reported as such, never guessed.
"""

from __future__ import annotations

from .. import catalog
from ..conf import settings
from ..handlers import consuming_services


def known_services() -> list[str]:
    """Services the code knows: those with handlers here, and every producer of the catalog."""
    names = set(consuming_services())
    names.update(e.owner for e in catalog.all())
    if service := settings().service:
        names.add(service)
    return sorted(names)


def service_databases() -> dict[str, str]:
    """``{service: database alias}`` for every service whose database this process can read."""
    from django.conf import settings as django_settings

    aliases = set(django_settings.DATABASES)
    conf = settings()
    found: dict[str, str] = {}
    for service in known_services():
        if service in aliases and service != "default":
            found[service] = service
    for service, alias in (conf.service_databases or {}).items():
        if alias in aliases:
            found[service] = alias
    if conf.service:
        found.setdefault(conf.service, conf.database or "default")
    return dict(sorted(found.items()))
