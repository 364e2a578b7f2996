"""What the notifier stores.

* ``Digest``: one row per digest sent by the notifier's own task ``notifier.tasks.send_digest``
  (queue ``notifier.work``), with the delivery it came from.
* ``CertificateNote``: one row per certificate the LMS awarded
  (``org.openedx.learning.certificate.created.v1``, queue ``events.notifier``), written by the
  handler in ``certificates.py``; the notifier congratulates the learner from it.
"""

from __future__ import annotations

from django.db import models


class Digest(models.Model):
    user_id = models.PositiveIntegerField()
    task_id = models.CharField(max_length=255)
    routing_key = models.CharField(max_length=255, blank=True)
    exchange = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"digest for user {self.user_id} ({self.task_id})"


class CertificateNote(models.Model):
    event_id = models.CharField(max_length=64, unique=True)
    user_id = models.PositiveIntegerField()
    username = models.CharField(max_length=150)
    email = models.EmailField()
    course_key = models.CharField(max_length=255)
    mode = models.CharField(max_length=100)
    download_url = models.URLField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"certificate of {self.username} in {self.course_key}"
