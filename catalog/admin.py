from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import BillableMetric, Charge, Plan


@admin.register(BillableMetric)
class BillableMetricAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "aggregation", "field_name"]
    search_fields = ["code", "name"]


class ChargeInline(admin.TabularInline):
    model = Charge
    extra = 0
    fields = [
        "position",
        "name",
        "metric",
        "charge_model",
        "billing_timing",
        "unit_price",
        "unit_name",
        "default_quantity",
    ]


@admin.register(Plan)
class PlanAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "currency", "billing_interval_months", "active"]
    search_fields = ["code", "name"]
    inlines = [ChargeInline]
