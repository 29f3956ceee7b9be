from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from customers.models import Customer, PortalMembership


class PortalMembershipInline(admin.TabularInline):
    model = PortalMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Customer)
class CustomerAdmin(SimpleHistoryAdmin):
    list_display = ["name", "external_id", "currency", "billing_email", "payment_terms_days"]
    search_fields = ["name", "external_id", "billing_email"]
    list_filter = ["currency"]
    inlines = [PortalMembershipInline]
