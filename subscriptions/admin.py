from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SubscriptionItemInline(ReadOnlyInline):
    model = SubscriptionItem
    fields = ["name", "metric", "billing_timing", "quantity", "unit_name", "pricing"]


class BillingPeriodInline(ReadOnlyInline):
    model = BillingPeriod
    fields = ["sequence", "start_date", "end_date", "advance_amount"]


@admin.register(Subscription)
class SubscriptionAdmin(SimpleHistoryAdmin):
    """Subscriptions are created by accepting a quote (or the service); here they are read."""

    list_display = ["external_id", "customer", "plan", "start_date", "term_months", "status"]
    list_filter = ["status", "plan"]
    search_fields = ["external_id", "customer__name", "customer__external_id"]
    readonly_fields = [
        "external_id",
        "customer",
        "plan",
        "currency",
        "start_date",
        "term_months",
        "billing_interval_months",
        "created_at",
    ]
    readonly_fields += ["status"]  # changes go through services (cancel/amend: later issues)
    inlines = [SubscriptionItemInline, BillingPeriodInline]

    def has_add_permission(self, request):
        return False
