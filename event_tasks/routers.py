"""Keep each service's database to its own tables.

Every consumer app is installed in every process (so any tool can import any service's
handlers), but a service's database only gets the projection tables of *its* app. With no
service set (tooling, the unit-test database) every table is allowed.
"""
from __future__ import annotations

from django.conf import settings


class ServiceRouter:
    def allow_migrate(self, db, app_label, model_name=None, **hints):
        service = getattr(settings, "EVENT_TASKS_SERVICE", None)
        package = getattr(settings, "EVENT_TASKS_CONSUMERS_PACKAGE", "consumers")
        from django.apps import apps

        try:
            config = apps.get_app_config(app_label)
        except LookupError:
            return None
        if not config.name.startswith(package + "."):
            return None
        if service is None:
            return None
        return config.name == f"{package}.{service}"
