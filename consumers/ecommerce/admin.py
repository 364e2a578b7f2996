from django.contrib import admin

from .models import Enrollment, Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "username", "total", "currency", "status", "date_placed", "fulfilled_at")
    list_filter = ("status", "currency")
    search_fields = ("number", "username", "email")
    inlines = [OrderLineInline]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ("username", "course_run_key", "mode", "is_active", "last_event_time")
    list_filter = ("is_active", "mode")
    search_fields = ("username", "course_run_key")


admin.site.register(OrderLine)
