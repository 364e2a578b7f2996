from django.contrib import admin

from .models import PublishedSchedule


@admin.register(PublishedSchedule)
class PublishedScheduleAdmin(admin.ModelAdmin):
    list_display = ("course_run_key", "title", "start", "end", "pacing", "last_event_time")
    list_filter = ("pacing",)
    search_fields = ("course_run_key", "title")
