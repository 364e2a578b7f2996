"""The notifier's reaction to certificates the LMS awards.

Consumed by service ``notifier`` on queue ``events.notifier``:
``org.openedx.learning.certificate.created.v1`` (producer: lms; payload in ``schemas.learning``).
"""

from __future__ import annotations

from event_tasks import Event, consumer

from .models import CertificateNote


@consumer("org.openedx.learning.certificate.created.v1")
def note_certificate(event: Event) -> None:
    """Remember the certificate, so the learner's next digest congratulates them."""
    cert = event.data["certificate"]
    user = cert["user"]
    CertificateNote.objects.update_or_create(
        event_id=event.id,
        defaults={
            "user_id": user["id"],
            "username": user["pii"]["username"],
            "email": user["pii"]["email"],
            "course_key": cert["course"]["course_key"],
            "mode": cert["mode"],
            "download_url": cert["download_url"],
        },
    )
