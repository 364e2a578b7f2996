"""Ecommerce's projection, in the ecommerce database (use case 4, from the LMS).

* :class:`Order` and its :class:`OrderLine` rows: orders placed at the LMS checkout and whether
  they were fulfilled;
* :class:`Enrollment`: each learner's enrollment mode per run (what upgrades and refunds need).
"""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    """An order, as the LMS last reported it."""

    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        FULFILLED = "fulfilled", "Fulfilled"

    number = models.CharField(max_length=128, unique=True)
    user_id = models.PositiveBigIntegerField(db_index=True)
    username = models.CharField(max_length=150)
    email = models.EmailField()
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices)
    date_placed = models.DateTimeField()
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    last_event_time = models.DateTimeField()

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.number} {self.username} {self.total} {self.currency} {self.status}"


class OrderLine(models.Model):
    """A seat in an order; replaced with its order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=128)
    course_run_key = models.CharField(max_length=255)
    mode = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["order", "sku"], name="ecommerce_sku_once_per_order")]
        ordering = ["order", "sku"]

    def __str__(self) -> str:
        return f"{self.course_run_key} {self.mode} {self.price}"


class Enrollment(models.Model):
    """A learner's enrollment in a run, as the LMS last reported it."""

    user_id = models.PositiveBigIntegerField()
    username = models.CharField(max_length=150)
    course_run_key = models.CharField(max_length=255, db_index=True)
    mode = models.CharField(max_length=100)
    is_active = models.BooleanField()
    last_event_time = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "course_run_key"], name="ecommerce_one_enrollment_per_learner_run"
            )
        ]
        ordering = ["course_run_key", "username"]

    def __str__(self) -> str:
        return f"{self.username} {self.course_run_key} {self.mode} {'active' if self.is_active else 'inactive'}"
