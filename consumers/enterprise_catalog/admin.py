from django.contrib import admin

from .models import ContentMetadata, SubscriptionCatalog


@admin.register(SubscriptionCatalog)
class SubscriptionCatalogAdmin(admin.ModelAdmin):
    list_display = ("title", "status", "enterprise_catalog_uuid", "expiration_date", "num_licenses", "last_event_time")
    list_filter = ("status",)
    search_fields = ("title", "plan_uuid")


@admin.register(ContentMetadata)
class ContentMetadataAdmin(admin.ModelAdmin):
    list_display = ("content_key", "title", "start", "end", "pacing_type", "last_event_time")
    search_fields = ("content_key", "title")
