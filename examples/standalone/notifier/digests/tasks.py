"""The notifier's own Celery task (it predates the event fabric and is left as it was).

``notifier.tasks.send_digest`` is routed by the host's ``CELERY_TASK_ROUTES`` to the queue
``notifier.work``; the fabric's ``install(app)`` does not change its route, id or serializer.
"""

from __future__ import annotations

from notifier.celery import app

from .models import Digest


@app.task(name="notifier.tasks.send_digest", bind=True)
def send_digest(self, user_id: int) -> int:
    """Send user ``user_id`` their digest; record where the task came from."""
    delivery = self.request.delivery_info or {}
    digest = Digest.objects.create(
        user_id=user_id,
        task_id=self.request.id,
        routing_key=delivery.get("routing_key") or "",
        exchange=delivery.get("exchange") or "",
    )
    return digest.pk
