from django import forms
from django.contrib import admin
from django.db.models import Prefetch
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter

from core.admin import LINK_CLASSES, ReadOnly
from core.errors import DomainError
from core.formatting import format_money
from core.money import exact_sum
from invoicing import admin as invoicing_admin
from invoicing.models import Invoice
from receivables import selectors, services
from receivables.models import (
    DunningNotice,
    DunningPause,
    DunningPolicy,
    DunningStep,
    Payment,
    PaymentAllocation,
)


class PaymentForm(forms.ModelForm):
    class Meta:
        model = Payment
        fields = ["customer", "amount", "currency", "received_on", "method", "reference"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and {"customer", "amount", "currency"} <= data.keys():
            try:
                services.payment_validate(
                    customer=data["customer"], amount=data["amount"], currency=data["currency"]
                )
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


class PaymentAllocationInline(ReadOnly, TabularInline):
    model = PaymentAllocation
    extra = 0
    fields = readonly_fields = ["invoice", "amount_shown", "applied_on", "reason"]

    @admin.display(description="Amount")
    def amount_shown(self, allocation):
        return format_money(allocation.amount, allocation.payment.currency)


@admin.register(Payment)
class PaymentAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ["customer", "amount_shown", "received_on", "method", "reference", "on_account"]
    list_filter = [("method", ChoicesDropdownFilter), "currency"]
    list_select_related = ["customer"]
    search_fields = ["customer__name", "reference"]
    autocomplete_fields = ["customer"]
    inlines = [PaymentAllocationInline]

    def get_queryset(self, request):
        # The On account column in one query for the page.
        listed = Prefetch(
            "allocations",
            queryset=PaymentAllocation.objects.filter(invoice__isnull=True),
            to_attr="on_account_rows",
        )
        return super().get_queryset(request).prefetch_related(listed)

    @admin.display(description="On account")
    def on_account(self, obj):
        if not hasattr(obj, "on_account_rows"):
            return format_money(services.payment_on_account(obj), obj.currency)
        return format_money(exact_sum(a.amount for a in obj.on_account_rows), obj.currency)

    @admin.display(description="Amount", ordering="amount")
    def amount_shown(self, obj):
        return format_money(obj.amount, obj.currency)

    form = PaymentForm

    def get_readonly_fields(self, request, obj=None):
        # A recorded payment is a fact: correct it with a new document, not an edit.
        return ["customer", "amount_shown", "received_on", "on_account"] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return super().get_fields(request, obj)
        return ["customer", "amount_shown", "received_on", "method", "reference", "on_account"]


# --- dunning ------------------------------------------------------------------------------------


class DunningStepInline(TabularInline):
    model = DunningStep
    extra = 0
    fields = ["days_from_due", "name", "subject", "body"]


@admin.register(DunningPolicy)
class DunningPolicyAdmin(SimpleHistoryAdmin, ModelAdmin):
    """Finance edits the reminders; a subject or body that does not render is refused on its
    field (DunningStep's validators)."""

    list_display = ["name", "active", "steps_shown"]
    inlines = [DunningStepInline]

    @admin.display(description="Steps")
    def steps_shown(self, obj):
        return ", ".join(f"{step.name} ({step.days_from_due:+d})" for step in obj.steps.all())


@admin.register(DunningPause)
class DunningPauseAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ["customer", "excluded", "paused_until", "reason"]
    autocomplete_fields = ["customer"]
    search_fields = ["customer__name"]


@admin.register(DunningNotice)
class DunningNoticeAdmin(ReadOnly, ModelAdmin):
    """The reminders sent; an invoice's own are at ?invoice__id__exact=<pk> (linked from the
    invoice page's "Dunning notices" field)."""

    list_display = ["invoice", "customer", "step", "sent_on", "to", "amount_due_shown"]
    list_filter = ["step__name", ("sent_on", RangeDateFilter)]
    list_select_related = ["invoice__customer", "step"]
    search_fields = ["invoice__number", "invoice__customer__name", "to"]
    date_hierarchy = "sent_on"

    @admin.display(description="Customer")
    def customer(self, obj):
        return obj.invoice.customer

    @admin.display(description="Amount due", ordering="amount_due")
    def amount_due_shown(self, obj):
        return format_money(obj.amount_due, obj.invoice.currency)


class OverdueFilter(admin.SimpleListFilter):
    """Invoices that selectors.invoice_state calls overdue (the portal's badge, the same rule)."""

    title = "payment"
    parameter_name = "payment"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(pk__in=selectors.overdue_invoice_ids())
        return queryset


@admin.display(description="Dunning notices")
def dunning_notices_link(model_admin, obj):
    count = obj.dunning_notices.count() if obj and obj.pk else 0
    if not count:
        return "None sent"
    url = reverse("admin:receivables_dunningnotice_changelist") + f"?invoice__id__exact={obj.pk}"
    return format_html('<a class="{}" href="{}">{} sent</a>', LINK_CLASSES, url, count)


# The invoice admin with receivables' Overdue filter and notices link: a subclass registered in
# place of invoicing's (invoicing does not import receivables).
admin.site.unregister(Invoice)


@admin.register(Invoice)
class InvoiceAdmin(invoicing_admin.InvoiceAdmin):
    list_filter = [*invoicing_admin.InvoiceAdmin.list_filter, OverdueFilter]
    readonly_fields = [*invoicing_admin.InvoiceAdmin.readonly_fields, "dunning_notices_link"]
    fieldsets = [
        (
            invoicing_admin.InvoiceAdmin.fieldsets[0][0],
            {
                **invoicing_admin.InvoiceAdmin.fieldsets[0][1],
                "fields": [
                    *invoicing_admin.InvoiceAdmin.fieldsets[0][1]["fields"],
                    "dunning_notices_link",
                ],
            },
        ),
        *invoicing_admin.InvoiceAdmin.fieldsets[1:],
    ]
    dunning_notices_link = dunning_notices_link


from receivables import admin_bank  # noqa: E402, F401  (bank statements: registers its admin)
