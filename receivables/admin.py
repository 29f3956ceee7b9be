from django.contrib import admin
from django.db.models import Prefetch
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from core.admin import LINK_CLASSES, ReadOnly
from core.formatting import format_money
from core.money import exact_sum
from customers import admin as customers_admin
from customers.models import Customer
from invoicing import admin as invoicing_admin
from invoicing.models import Invoice
from receivables import admin_payments, selectors, services
from receivables.admin_views import may_see_receivables
from receivables.models import (
    DunningNotice,
    DunningPause,
    DunningPolicy,
    DunningStep,
    Payment,
    PaymentAllocation,
)


class ReversedFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("received", "Received"), ("reversed", "Reversed")]

    def queryset(self, request, queryset):
        if self.value() == "reversed":
            return queryset.filter(reversed_on__isnull=False)
        if self.value() == "received":
            return queryset.filter(reversed_on__isnull=True)
        return queryset


class PaymentAllocationInline(ReadOnly, TabularInline):
    """The payment's allocations, signed and append-only: to an invoice or on account, and the
    rows that took them back (un-apply, reversal) with their reasons."""

    model = PaymentAllocation
    extra = 0
    hide_title = True  # the row header would repeat the amount and the invoice
    fields = readonly_fields = ["to", "amount_shown", "applied_on", "reason", "unapply"]
    verbose_name_plural = "Allocations"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "invoice")

    @admin.display(description="To")
    def to(self, allocation):
        if allocation.invoice_id is None:
            return "On account (credit balance)"
        url = reverse("admin:invoicing_invoice_change", args=[allocation.invoice_id])
        return format_html('<a class="{}" href="{}">{}</a>', LINK_CLASSES, url, allocation.invoice)

    @admin.display(description="Amount")
    def amount_shown(self, allocation):
        return format_money(allocation.amount, allocation.payment.currency)

    @admin.display(description="")
    def unapply(self, allocation):
        """An application to an invoice that still stands can be taken back."""
        payment = allocation.payment
        if allocation.invoice_id is None or allocation.amount < 0 or payment.reversed_on:
            return ""
        if services.allocation_net(allocation) <= 0:
            return "Un-applied"
        url = reverse("admin:receivables_payment_unapply", args=[payment.pk, allocation.pk])
        return format_html('<a class="{}" href="{}">Un-apply…</a>', LINK_CLASSES, url)


@admin.register(Payment)
class PaymentAdmin(SimpleHistoryAdmin, ModelAdmin):
    """A recorded payment is a fact: its page is read-only; its actions (apply on-account money,
    un-apply, reverse) and the "Add" page are admin_payments' views, each one service call."""

    list_display = [
        "customer",
        "amount_shown",
        "received_on",
        "method",
        "reference",
        "on_account",
        "status",
    ]
    list_filter = [("method", ChoicesDropdownFilter), "currency", ReversedFilter]
    list_select_related = ["customer"]
    search_fields = ["customer__name", "reference"]
    autocomplete_fields = ["customer"]
    inlines = [PaymentAllocationInline]
    actions_detail = ["detail_apply", "detail_reverse"]
    fields = readonly_fields = [
        "state",
        "customer",
        "amount_shown",
        "received_on",
        "method",
        "reference",
        "on_account",
        "created_by",
        "created_at",
    ]

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

    @display(description="Status", label={"Received": "success", "Reversed": "danger"})
    def status(self, obj):
        return "Reversed" if obj.reversed_on else "Received"

    @admin.display(description="Status")
    def state(self, obj):
        """On the payment's page: reversed, when and why, in red."""
        if not obj.reversed_on:
            return "Received"
        return format_html(
            '<strong class="text-red-600 dark:text-red-500">REVERSED on {}</strong>: {}',
            f"{obj.reversed_on:%b %-d, %Y}",
            obj.reversal_reason,
        )

    def has_change_permission(self, request, obj=None):
        return False  # read-only facts; the actions have their own permissions

    def has_delete_permission(self, request, obj=None):
        return False  # a bounced payment is reversed, never deleted

    def add_view(self, request, form_url="", extra_context=None):
        return admin_payments.payment_add_view(request)

    @action(description="Apply on-account money", icon="task_alt", permissions=["apply"])
    def detail_apply(self, request, object_id):
        return redirect(reverse("admin:receivables_payment_apply", args=[object_id]))

    @action(
        description="Reverse payment",
        icon="undo",
        permissions=["reverse"],
        variant=ActionVariant.DANGER,
    )
    def detail_reverse(self, request, object_id):
        return redirect(reverse("admin:receivables_payment_reverse", args=[object_id]))

    def has_apply_permission(self, request, object_id=None):
        """Finance, on a payment not reversed with money on account."""
        if not admin_payments.may_handle_cash(request.user):
            return False
        if object_id is None:
            return True
        payment = Payment.objects.filter(pk=object_id, reversed_on__isnull=True).first()
        return payment is not None and services.payment_on_account(payment) > 0

    def has_reverse_permission(self, request, object_id=None):
        """Finance, on a payment not reversed yet."""
        if not admin_payments.may_handle_cash(request.user):
            return False
        return object_id is None or (
            Payment.objects.filter(pk=object_id, reversed_on__isnull=True).exists()
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        urls = [
            path(
                "<int:pk>/apply/",
                view(admin_payments.payment_apply_view),
                name="receivables_payment_apply",
            ),
            path(
                "<int:pk>/reverse/",
                view(admin_payments.payment_reverse_view),
                name="receivables_payment_reverse",
            ),
            path(
                "<int:pk>/unapply/<int:allocation_pk>/",
                view(admin_payments.payment_unapply_view),
                name="receivables_payment_unapply",
            ),
        ]
        return urls + super().get_urls()


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


# The customer admin with a receivables panel (open, overdue, credit balance): a subclass
# registered in place of customers' (customers does not import receivables).
admin.site.unregister(Customer)


@admin.register(Customer)
class CustomerAdmin(customers_admin.CustomerAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "receivables_panel"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (
                name,
                {**options, "fields": [f for f in options["fields"] if f != "receivables_panel"]},
            )
            for name, options in super().get_fieldsets(request, obj)
        ]
        if obj is not None and may_see_receivables(request.user):
            fieldsets.append(("Receivables", {"fields": ["receivables_panel"]}))
        return fieldsets

    @admin.display(description="Open, overdue, credit")
    def receivables_panel(self, obj):
        """Per currency (theirs first): what is open and overdue on their invoices, and their
        credit balance, with links to the invoices and the balance's ledger."""
        balances = selectors.customer_balances(customer=obj)
        credit_url = reverse("receivables-credit-balance", args=[obj.pk])
        invoices_url = reverse("admin:invoicing_invoice_changelist")
        record = format_html(
            '<div><a class="{}" href="{}?customer={}">Record a payment</a></div>',
            LINK_CLASSES,
            reverse("admin:receivables_payment_add"),
            obj.pk,
        )
        if not balances:
            return format_html(
                'Nothing open, no credit balance. <a class="{}" href="{}">Its entries</a>{}',
                LINK_CLASSES,
                credit_url,
                record,
            )
        rows = format_html_join(
            "",
            '<div class="mb-1"><strong>{}</strong>: open {} on <a class="{}" href="{}">{} '
            "invoice{}</a> · overdue {} on {} · credit balance "
            '<a class="{}" href="{}">{}</a></div>',
            (
                (
                    b.currency,
                    format_money(b.due, b.currency),
                    LINK_CLASSES,
                    f"{invoices_url}?customer__id__exact={obj.pk}&status__exact=finalized",
                    b.open_invoices,
                    "" if b.open_invoices == 1 else "s",
                    format_money(b.overdue, b.currency),
                    b.overdue_invoices,
                    LINK_CLASSES,
                    credit_url,
                    format_money(b.credit, b.currency),
                )
                for b in balances
            ),
        )
        return rows + record


from receivables import admin_bank  # noqa: E402, F401  (bank statements: registers its admin)
