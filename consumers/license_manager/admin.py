from django.contrib import admin

from .models import LicensedEnrollment


@admin.register(LicensedEnrollment)
class LicensedEnrollmentAdmin(admin.ModelAdmin):
    list_display = ("lms_user_id", "course_run_key", "license_uuid", "is_revoked", "unenrolled", "last_event_time")
    list_filter = ("is_revoked", "unenrolled")
    search_fields = ("course_run_key", "license_uuid")
