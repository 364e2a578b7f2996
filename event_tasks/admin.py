"""Admin pages in every service: dead letters (with replay), the outbox, processed events."""
from django.contrib import admin, messages

from .errors import EventTasksError
from .models import DeadLetter, OutboxEvent, ProcessedEvent
from .replay import replay


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("created_at", "service", "event_type", "event_id", "reason", "attempts", "replays")
    list_filter = ("service", "reason", "event_type")
    search_fields = ("event_id", "event_type", "detail")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]

    @admin.action(description="Replay to the service's own queue (original event id)")
    def replay(self, request, queryset):
        for letter in queryset:
            try:
                queue = replay(letter)
            except EventTasksError as exc:
                self.message_user(request, f"#{letter.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"#{letter.pk} replayed to {queue}", messages.SUCCESS)


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "event_type", "event_id", "sent_at", "attempts")
    list_filter = ("event_type", ("sent_at", admin.EmptyFieldListFilter))
    search_fields = ("event_id", "event_type", "key")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(admin.ModelAdmin):
    list_display = ("processed_at", "event_type", "event_id", "handler", "duplicates")
    list_filter = ("event_type", "handler")
    search_fields = ("event_id",)
    readonly_fields = [f.name for f in ProcessedEvent._meta.fields]
