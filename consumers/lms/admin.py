from django.contrib import admin

from .models import CourseMode, ExamOutcome, LearnerLicense, PublishedCourseRun


@admin.register(ExamOutcome)
class ExamOutcomeAdmin(admin.ModelAdmin):
    list_display = (
        "username",
        "course_run_key",
        "usage_key",
        "status",
        "credit_requirement_status",
        "completed",
        "grade_zeroed",
        "certificate_blocked",
        "last_event_time",
    )
    list_filter = ("status", "credit_requirement_status", "exam_type")
    search_fields = ("username", "course_run_key", "usage_key")


@admin.register(LearnerLicense)
class LearnerLicenseAdmin(admin.ModelAdmin):
    list_display = ("user_email", "status", "subscription_plan_uuid", "expiration_date", "last_event_time")
    list_filter = ("status",)
    search_fields = ("user_email", "uuid")


class CourseModeInline(admin.TabularInline):
    model = CourseMode
    extra = 0


@admin.register(PublishedCourseRun)
class PublishedCourseRunAdmin(admin.ModelAdmin):
    list_display = ("key", "title", "start", "end", "enrollment_start", "enrollment_end", "last_event_time")
    search_fields = ("key", "title")
    inlines = [CourseModeInline]


admin.site.register(CourseMode)
