from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from core.admin import ReadOnly
from core.formatting import format_money
from revrec import admin_ledger  # noqa: F401  (registers the ledger's admins)
from revrec.models import RevenueSchedule, RevenueScheduleLine


class RevenueScheduleLineInline(ReadOnly, TabularInline):
    model = RevenueScheduleLine
    extra = 0
    fields = readonly_fields = ["month", "start_date", "end_date", "amount_shown", "recognized_at"]

    @admin.display(description="Amount")
    def amount_shown(self, line):
        return format_money(line.amount, line.schedule.currency)


@admin.register(RevenueSchedule)
class RevenueScheduleAdmin(ModelAdmin):
    list_display = ["subscription", "total_shown", "created_at"]
    search_fields = ["subscription__external_id", "subscription__customer__name"]
    list_select_related = ["subscription"]
    fields = readonly_fields = ["subscription", "total_shown", "created_at"]

    @admin.display(description="Total", ordering="total")
    def total_shown(self, schedule):
        return format_money(schedule.total, schedule.currency)

    inlines = [RevenueScheduleLineInline]

    def has_add_permission(self, request):
        return False


from revrec import admin_contracts  # noqa: E402, F401  (revenue contracts, Recognize now)
