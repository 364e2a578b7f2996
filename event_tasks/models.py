"""Tables the fabric keeps in each service's own database."""

from __future__ import annotations

from django.db import models


class DeadLetter(models.Model):
    """An event (or unreadable message) this service gave up on, with the reason.

    Written by the service's worker: after the last retry of a failing handler, or at once for a
    message that is not a readable event. Nothing is dropped silently: it ends here.
    """

    class Reason(models.TextChoices):
        MAX_RETRIES = "max_retries", "handler failed on every attempt"
        NOT_RETRIED = "not_retried", "handler raised an exception it does not retry (dont_retry / retry_for)"
        INVALID_PAYLOAD = "invalid_payload", "payload does not match the schema"
        INVALID_ENVELOPE = "invalid_envelope", "envelope missing or malformed"
        UNSUPPORTED_VERSION = "unsupported_version", "envelope version this service cannot read"
        UNKNOWN_TYPE = "unknown_type", "event type this service has no handler for"
        UNDECODABLE = "undecodable", "body is not valid JSON"
        CONTENT_DISALLOWED = "content_disallowed", "content type refused (e.g. pickle)"
        NOT_A_TASK = "not_a_task", "message without task headers"
        INVALID_ARGUMENTS = "invalid_arguments", "task arguments are not (envelope, data)"
        TOO_LARGE = "too_large", "payload over EVENT_TASKS_MAX_PAYLOAD_BYTES"
        TIME_LIMIT = "time_limit", "handler ran past EVENT_TASKS_HANDLER_TIME_LIMIT"
        INTERNAL_ERROR = "internal_error", "the fabric itself failed unexpectedly (see traceback)"
        WORKER_LOST = "worker_lost", "the worker died handling it, again and again (poison message)"
        DELIVERY_LIMIT = "delivery_limit", "RabbitMQ handed it out EVENT_TASKS_QUORUM_DELIVERY_LIMIT times (parked)"
        UNSIGNED = "unsigned", "no signature, and EVENT_TASKS_SIGNING_MODE is enforce"
        BAD_SIGNATURE = "bad_signature", "the signature does not verify (tampered, or an unknown or removed key)"
        NOT_OWNER = "not_owner", "signed by a service that does not own the event type"

    service = models.CharField(max_length=64, db_index=True)
    event_id = models.CharField(max_length=64, blank=True, db_index=True)
    event_type = models.CharField(max_length=255, blank=True, db_index=True)
    task_id = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=32, choices=Reason.choices, db_index=True)
    detail = models.TextField(blank=True, help_text="The exception or the decoding problem")
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    raw = models.TextField(blank=True, help_text="The message as received (JSON, or base64 of bytes)")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["service", "reason", "created_at"]),
            models.Index(fields=["replayed_at"], name="event_tasks_dl_replayed"),
        ]  # retention

    def __str__(self) -> str:
        return f"{self.service}: {self.event_type or '?'} {self.event_id or ''} ({self.reason})"


class OutboxEvent(models.Model):
    """An event sent inside a database transaction: written with it, published after commit.

    ``body`` is the complete task body (envelope + payload), so the relay publishes exactly the
    event ``send_event`` returned, with its original id.
    """

    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=255)
    key = models.CharField(max_length=255, null=True, blank=True)
    body = models.TextField()
    argsrepr = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="A row that failed on its own waits until then (backoff)"
    )
    claimed_by = models.CharField(
        max_length=128, blank=True, help_text="Who is publishing it: a relay, or the on-commit publish of the sender"
    )
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="The claim's lease: after it, another relay may take the row"
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["sent_at", "id"])]

    def __str__(self) -> str:
        state = f"sent {self.sent_at:%Y-%m-%d %H:%M:%S}" if self.sent_at else "pending"
        return f"{self.event_type} {self.event_id} ({state})"


class ProcessedEvent(models.Model):
    """(event, handler) pairs this service already applied: a redelivered duplicate is skipped.

    Written in the same transaction as the handler's own writes, so a handler that failed is not
    marked. ``duplicates`` counts the copies that were skipped.
    """

    event_id = models.CharField(max_length=64)
    handler = models.CharField(max_length=255)
    service = models.CharField(max_length=64)
    event_type = models.CharField(max_length=255)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    duplicates = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_id", "handler"], name="event_tasks_processed_once")]

    def __str__(self) -> str:
        return f"{self.event_id} by {self.handler}"


class Redelivery(models.Model):
    """How often one delivery (task id + retry number) came back after its worker died."""

    task_id = models.CharField(max_length=255)
    retries = models.PositiveIntegerField()
    count = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task_id", "retries"], name="event_tasks_redelivery_once")]
        indexes = [models.Index(fields=["last_at"], name="event_tasks_redelivery_last")]  # retention


class SignatureWarning(models.Model):
    """Events a worker in ``EVENT_TASKS_SIGNING_MODE = "warn"`` ran although ``enforce`` would refuse them.

    One row per (service, reason, event type, source), counting the deliveries: what switching to
    ``enforce`` would dead-letter (``docs/signing.md``).
    """

    service = models.CharField(max_length=64)
    reason = models.CharField(max_length=32, choices=DeadLetter.Reason.choices)
    event_type = models.CharField(max_length=255)
    source = models.CharField(max_length=255, blank=True)
    count = models.PositiveIntegerField(default=0)
    last_event_id = models.CharField(max_length=64, blank=True)
    last_detail = models.TextField(blank=True)
    last_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "reason", "event_type", "source"], name="event_tasks_signature_warning_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service}: {self.count} x {self.reason} {self.event_type} from {self.source or '?'}"
