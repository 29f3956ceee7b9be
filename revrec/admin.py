from django.contrib import admin

from revrec.models import RevenueSchedule, RevenueScheduleLine


class RevenueScheduleLineInline(admin.TabularInline):
    model = RevenueScheduleLine
    extra = 0
    can_delete = False
    readonly_fields = ["month", "start_date", "end_date", "amount", "recognized_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RevenueSchedule)
class RevenueScheduleAdmin(admin.ModelAdmin):
    list_display = ["subscription", "total", "currency", "created_at"]
    search_fields = ["subscription__external_id", "subscription__customer__name"]
    readonly_fields = ["subscription", "total", "currency", "created_at"]
    inlines = [RevenueScheduleLineInline]

    def has_add_permission(self, request):
        return False
