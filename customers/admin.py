from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline

from customers.models import Customer, PortalMembership, timezone_choices

# What the customer is billed and how: only Finance (customers.change_customer_financials)
# changes these. A customer added by someone else gets the fields' defaults (and no billing
# email) until Finance fills them in.
FINANCIAL_FIELDS = ["currency", "tax_rate", "payment_terms_days", "billing_email", "timezone"]
FINANCIAL_FIELDS += ["renewal_uplift_percent"]  # the price increase at renewal (quotes.renewals)


class PortalMembershipInline(TabularInline):
    model = PortalMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Customer)
class CustomerAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ["name", "external_id", "currency", "billing_email", "payment_terms_days"]
    search_fields = ["name", "external_id", "billing_email"]
    list_filter = ["currency"]
    inlines = [PortalMembershipInline]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # The zones of the running machine, listed here rather than as model choices (which
        # would bake one machine's tzdata into the migrations).
        if db_field.name == "timezone":
            return forms.ChoiceField(
                choices=timezone_choices(),
                initial=db_field.default,
                help_text=db_field.help_text,
                validators=db_field.validators,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.has_perm("customers.change_customer_financials"):
            readonly += FINANCIAL_FIELDS
        return readonly
