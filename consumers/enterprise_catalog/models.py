"""The enterprise catalog's projection, in its own database.

* :class:`SubscriptionCatalog`: which enterprise catalogs back a subscription plan, and whether
  the plan is live (use case 5, from the license manager);
* :class:`ContentMetadata`: each course run's metadata as Publisher published it, what enterprise
  catalogs list (use case 8, from discovery).
"""

from __future__ import annotations

from django.db import models


class SubscriptionCatalog(models.Model):
    """A subscription plan and the catalog it grants access to."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"

    plan_uuid = models.UUIDField(unique=True)
    title = models.CharField(max_length=255)
    enterprise_customer_uuid = models.UUIDField(db_index=True)
    enterprise_catalog_uuid = models.UUIDField(db_index=True)
    start_date = models.DateTimeField()
    expiration_date = models.DateTimeField()
    num_licenses = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return f"{self.title} ({self.status}) -> catalog {self.enterprise_catalog_uuid}"


class ContentMetadata(models.Model):
    """Metadata of one course run, as enterprise catalogs show it."""

    content_key = models.CharField(max_length=255, unique=True, help_text="course-v1:Org+Course+Run")
    parent_content_key = models.CharField(max_length=255, db_index=True, help_text="Org+Course")
    title = models.CharField(max_length=255)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    enrollment_end = models.DateTimeField(null=True, blank=True)
    pacing_type = models.CharField(max_length=32)
    marketing_url = models.URLField(max_length=500, null=True, blank=True)
    seats = models.JSONField(default=list, help_text="[{type, price, currency, upgrade_deadline}]")
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["content_key"]
        verbose_name_plural = "content metadata"

    def __str__(self) -> str:
        return f"{self.content_key} {self.title!r}"
