from django.contrib import admin

from .models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("created_at", "service", "event_type", "event_id", "reason", "attempts")
    list_filter = ("service", "reason", "event_type")
    search_fields = ("event_id", "event_type", "detail")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
