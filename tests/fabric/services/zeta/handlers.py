"""Probe service zeta: queue events.zeta, consumes org.openedx.learning.probe.updated.v1 with the
per-handler options of ``@consumer``: a stable name, its own retry budget, an exception it never
retries and a time limit. The handler lives in ``audit.py`` and is imported here (discovery counts
imported functions)."""

from tests.fabric.services.zeta.audit import audit_probe

__all__ = ["audit_probe"]
