from django.contrib import admin

from core.admin import ReadOnly
from revrec.models import RevenueSchedule, RevenueScheduleLine


class RevenueScheduleLineInline(ReadOnly, admin.TabularInline):
    model = RevenueScheduleLine
    extra = 0
    readonly_fields = ["month", "start_date", "end_date", "amount", "recognized_at"]


@admin.register(RevenueSchedule)
class RevenueScheduleAdmin(admin.ModelAdmin):
    list_display = ["subscription", "total", "currency", "created_at"]
    search_fields = ["subscription__external_id", "subscription__customer__name"]
    readonly_fields = ["subscription", "total", "currency", "created_at"]
    inlines = [RevenueScheduleLineInline]

    def has_add_permission(self, request):
        return False
