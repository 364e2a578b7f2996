"""Admin pages in every service: dead letters (with replay), the outbox, processed events."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .errors import EventTasksError
from .models import DeadLetter, OutboxEvent, ProcessedEvent
from .ops.replay import replay


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("created_at", "service", "event_type", "event_id", "reason", "attempts", "replays")
    list_filter = ("service", "reason", "event_type")
    search_fields = ("event_id", "event_type", "detail")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]

    @admin.action(description="Replay to the service's own queue (original event id)")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for letter in queryset:
            try:
                queue = replay(letter)
            except EventTasksError as exc:
                self.message_user(request, f"#{letter.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"#{letter.pk} replayed to {queue}", messages.SUCCESS)


class FailingFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[OutboxEvent]) -> list[tuple[str, str]]:
        return [
            ("failing", "failing on its own (waits for a retry)"),
            ("pending", "not sent yet"),
            ("claimed", "claimed by a relay or a sender"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent]:
        if self.value() == "failing":
            return queryset.filter(sent_at__isnull=True, next_attempt_at__isnull=False)
        if self.value() == "pending":
            return queryset.filter(sent_at__isnull=True)
        if self.value() == "claimed":
            return queryset.filter(sent_at__isnull=True, claimed_until__isnull=False)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "event_type",
        "event_id",
        "sent_at",
        "attempts",
        "next_attempt_at",
        "claimed_by",
        "short_error",
    )
    list_filter = (FailingFilter, "event_type", ("sent_at", admin.EmptyFieldListFilter))

    @admin.display(description="last error")
    def short_error(self, obj: OutboxEvent) -> str:
        return obj.last_error[:120]

    search_fields = ("event_id", "event_type", "key")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(admin.ModelAdmin):
    list_display = ("processed_at", "event_type", "event_id", "handler", "duplicates")
    list_filter = ("event_type", "handler")
    search_fields = ("event_id",)
    readonly_fields = [f.name for f in ProcessedEvent._meta.fields]
