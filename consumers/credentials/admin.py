from django.contrib import admin

from .models import (
    CatalogCourse,
    CatalogCourseRun,
    CatalogProgram,
    Certificate,
    ProgramCourse,
    ProgramIntent,
    UserGrade,
)


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ("username", "course_run_key", "mode", "status", "lms_status", "grade", "last_event_time")
    list_filter = ("status", "mode")
    search_fields = ("username", "course_run_key")


@admin.register(UserGrade)
class UserGradeAdmin(admin.ModelAdmin):
    list_display = (
        "user_id",
        "course_run_key",
        "percent_grade",
        "letter_grade",
        "is_passing",
        "grade_event_time",
        "passing_event_time",
    )
    list_filter = ("is_passing",)
    search_fields = ("course_run_key",)


@admin.register(ProgramIntent)
class ProgramIntentAdmin(admin.ModelAdmin):
    list_display = ("username", "program_title", "intent", "last_event_time")
    list_filter = ("intent",)


class CatalogCourseRunInline(admin.TabularInline):
    model = CatalogCourseRun
    extra = 0


@admin.register(CatalogCourse)
class CatalogCourseAdmin(admin.ModelAdmin):
    list_display = ("key", "title", "uuid", "last_event_time")
    search_fields = ("key", "title")
    inlines = [CatalogCourseRunInline]


class ProgramCourseInline(admin.TabularInline):
    model = ProgramCourse
    extra = 0


@admin.register(CatalogProgram)
class CatalogProgramAdmin(admin.ModelAdmin):
    list_display = ("title", "program_type", "status", "uuid", "last_event_time")
    list_filter = ("status", "program_type")
    inlines = [ProgramCourseInline]


admin.site.register(CatalogCourseRun)
admin.site.register(ProgramCourse)
