from django.contrib import admin

from .models import CourseRun, CourseRunEnrollment


@admin.register(CourseRun)
class CourseRunAdmin(admin.ModelAdmin):
    list_display = ("key", "title", "status", "pacing_type", "start", "end", "last_event_time")
    list_filter = ("status", "pacing_type")
    search_fields = ("key", "title")


@admin.register(CourseRunEnrollment)
class CourseRunEnrollmentAdmin(admin.ModelAdmin):
    list_display = ("course_run_key", "user_id", "mode", "is_active", "last_event_time")
    list_filter = ("is_active", "mode")
    search_fields = ("course_run_key",)
