"""The notifier's event handlers (found by the fabric in this ``handlers`` module).

Service ``notifier``, queue ``events.notifier``. Consumes:

* ``org.openedx.learning.certificate.created.v1`` (from the LMS): ``certificates.note_certificate``.

Handlers may live anywhere in the app; importing them here is what subscribes them.
"""

from .certificates import note_certificate

__all__ = ["note_certificate"]
