from django.contrib import admin

from metering.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Usage events are append-only: visible here, never edited."""

    list_display = ["transaction_id", "code", "subscription", "timestamp", "received_at"]
    list_filter = ["code"]
    search_fields = ["transaction_id", "subscription__external_id"]
    date_hierarchy = "timestamp"
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
