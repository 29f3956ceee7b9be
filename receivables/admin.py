from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.widgets import (
    UnfoldAdminDecimalFieldWidget,
    UnfoldAdminSingleDateWidget,
    UnfoldAdminTextareaWidget,
)

from core import clock
from core.admin import LINK_CLASSES, ReadOnly
from core.errors import DomainError
from core.formatting import format_money
from core.money import exact_sum, round_money
from customers import admin as customers_admin
from customers.models import Customer
from invoicing import admin as invoicing_admin
from invoicing.models import CreditBalanceEntry, Invoice
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
from receivables.selectors import InvoiceState as State


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


PAYMENT_STATES = [State.OPEN, State.PARTIALLY_PAID, State.OVERDUE, State.PAID, State.WRITTEN_OFF]


class PaymentStateFilter(admin.SimpleListFilter):
    """Invoices by selectors.invoice_state (the portal's badge, the same rule), in SQL: finalized
    means something is left to pay and paid means nothing is (invoicing.balance.invoice_settle
    keeps the stored status so). ?payment=overdue is the Overdue filter dunning links to."""

    title = "payment state"
    parameter_name = "payment"

    def lookups(self, request, model_admin):
        return [(state.replace(" ", "_"), state.capitalize()) for state in PAYMENT_STATES]

    def queryset(self, request, queryset):
        value, today = (self.value() or "").replace("_", " "), clock.today()
        finalized = Q(status=Invoice.Status.FINALIZED)
        not_due = finalized & Q(due_date__gte=today)
        condition = {
            State.OPEN: not_due & Q(paid_amount=0),
            State.PARTIALLY_PAID: not_due & Q(paid_amount__gt=0),
            State.OVERDUE: Q(pk__in=selectors.overdue_invoice_ids(today)),
            State.PAID: Q(status=Invoice.Status.PAID, written_off_amount=0),
            State.WRITTEN_OFF: Q(status=Invoice.Status.PAID, written_off_amount__gt=0),
        }.get(value)
        return queryset if condition is None else queryset.filter(condition)


# The badge colours of unfold's own labels, by derived state.
STATE_COLOURS = {
    State.PAID: "bg-green-100 text-green-700 dark:bg-green-500/20 dark:text-green-400",
    State.PARTIALLY_PAID: "bg-blue-100 text-blue-700 dark:bg-blue-500/20 dark:text-blue-400",
    State.OPEN: "bg-orange-100 text-orange-700 dark:bg-orange-500/20 dark:text-orange-400",
    State.OVERDUE: "bg-red-100 text-red-700 dark:bg-red-500/20 dark:text-red-400",
}
GREY = "bg-base-100 text-base-700 dark:bg-base-500/20 dark:text-base-200"


def state_badge(state: str) -> str:
    return format_html(
        '<span class="inline-block font-semibold leading-normal px-2 py-1 rounded-default '
        'text-xxs uppercase whitespace-nowrap {}">{}</span>',
        STATE_COLOURS.get(state, GREY),
        state,
    )


@admin.display(description="Dunning notices")
def dunning_notices_link(model_admin, obj):
    count = obj.dunning_notices.count() if obj and obj.pk else 0
    if not count:
        return "None sent"
    url = reverse("admin:receivables_dunningnotice_changelist") + f"?invoice__id__exact={obj.pk}"
    return format_html('<a class="{}" href="{}">{} sent</a>', LINK_CLASSES, url, count)


def may_write_off(user) -> bool:
    """Finance who may change invoices (a superuser too); Sales only sees invoices."""
    return may_see_receivables(user) and user.has_perm("invoicing.change_invoice")


class WriteOffForm(forms.Form):
    amount = forms.DecimalField(
        min_value=Decimal("0.01"),
        decimal_places=2,
        widget=UnfoldAdminDecimalFieldWidget,
        help_text="All that is open, unless you write off less.",
    )
    on = forms.DateField(
        label="Written off on", widget=UnfoldAdminSingleDateWidget, help_text="Today by default."
    )
    reason = forms.CharField(
        max_length=300,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Why it will not be collected: kept on the write-off and the statement.",
    )


def collections_rows(invoice: Invoice) -> list[tuple]:
    """(date, what, reference, amount, note) of what settled the invoice or took it back:
    payments applied (and un-applied or reversed), the credit balance applied (and taken back),
    write-offs; oldest first."""
    currency = invoice.currency
    rows = []
    for row in invoice.allocations.select_related("payment").order_by("applied_on", "id"):
        payment = row.payment
        if row.amount > 0:
            what = f"Payment ({payment.get_method_display().lower()})"
        elif payment.reversed_on is not None and row.applied_on == payment.reversed_on:
            what = "Payment reversed"
        else:
            what = "Payment un-applied"
        url = reverse("admin:receivables_payment_change", args=[payment.pk])
        reference = format_html(
            '<a class="{}" href="{}">{}</a>', LINK_CLASSES, url, payment.reference or payment.pk
        )
        rows.append((row.applied_on, what, reference, row.amount, row.reason))
    applied = invoice.credit_balance_entries.filter(kind=CreditBalanceEntry.Kind.APPLIED)
    for entry in applied.order_by("effective_on", "id"):
        what = "Credit balance applied" if entry.amount < 0 else "Credit balance taken back"
        rows.append((entry.effective_on, what, "", -entry.amount, entry.memo))
    for write_off in invoice.write_offs.order_by("written_off_on", "id"):
        rows.append((write_off.written_off_on, "Write-off", "", write_off.amount, write_off.reason))
    rows.sort(key=lambda r: r[0])
    return [
        (d, what, ref, format_money(amount, currency), note) for d, what, ref, amount, note in rows
    ]


# The invoice admin with receivables' figures, payment state, write-off page and notices link: a
# subclass registered in place of invoicing's (invoicing does not import receivables).
admin.site.unregister(Invoice)


@admin.register(Invoice)
class InvoiceAdmin(invoicing_admin.InvoiceAdmin):
    list_display = [*invoicing_admin.InvoiceAdmin.list_display, "payment_state"]
    list_filter = [*invoicing_admin.InvoiceAdmin.list_filter, PaymentStateFilter]
    actions_detail = [*invoicing_admin.InvoiceAdmin.actions_detail, "detail_write_off"]
    readonly_fields = [
        *invoicing_admin.InvoiceAdmin.readonly_fields,
        "dunning_notices_link",
        "payment_state",
        "paid_shown",
        "written_off_shown",
        "open_shown",
        "collections",
    ]
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
        (
            "Amounts",
            {
                "fields": [
                    *dict(invoicing_admin.InvoiceAdmin.fieldsets)["Amounts"]["fields"],
                    "paid_shown",
                    "written_off_shown",
                    "open_shown",
                    "payment_state",
                ]
            },
        ),
        ("Payments, credit applied and write-offs", {"fields": ["collections"]}),
        *(fs for fs in invoicing_admin.InvoiceAdmin.fieldsets[1:] if fs[0] != "Amounts"),
    ]
    dunning_notices_link = dunning_notices_link

    @admin.display(description="Payment state")
    def payment_state(self, obj):
        if obj.due_date is None and obj.status == Invoice.Status.FINALIZED:
            return "—"  # not issued the usual way (no due date): no state to derive
        return state_badge(selectors.invoice_state(obj))

    @admin.display(description="Paid")
    def paid_shown(self, obj):
        """Payments and credit balance applied, net of what was taken back."""
        return format_money(obj.paid_amount, obj.currency)

    @admin.display(description="Written off")
    def written_off_shown(self, obj):
        return format_money(obj.written_off_amount, obj.currency)

    @admin.display(description="Open amount")
    def open_shown(self, obj):
        return format_money(obj.open_amount, obj.currency)

    @admin.display(description="Applied to this invoice")
    def collections(self, obj):
        rows = collections_rows(obj) if obj and obj.pk else []
        if not rows:
            return "Nothing paid, applied or written off yet."
        cell = "px-2 py-1 border-b border-base-200 dark:border-base-800"
        return format_html(
            '<table class="w-full text-sm"><thead><tr>'
            '<th class="{c} text-left">Date</th><th class="{c} text-left">What</th>'
            '<th class="{c} text-left">Payment</th><th class="{c} text-right">Amount</th>'
            '<th class="{c} text-left">Note</th></tr></thead><tbody>{rows}</tbody></table>',
            c=cell,
            rows=format_html_join(
                "",
                '<tr><td class="' + cell + ' whitespace-nowrap">{}</td>'
                '<td class="' + cell + ' whitespace-nowrap">{}</td>'
                '<td class="' + cell + '">{}</td><td class="' + cell + ' text-right">{}</td>'
                '<td class="' + cell + '">{}</td></tr>',
                (
                    (f"{d:%b %-d, %Y}", what, ref, amount, note)
                    for d, what, ref, amount, note in rows
                ),
            ),
        )

    @action(description="Write off", icon="money_off", permissions=["write_off"])
    def detail_write_off(self, request, object_id):
        return redirect(reverse("admin:invoicing_invoice_write_off", args=[object_id]))

    def has_write_off_permission(self, request, object_id=None):
        """Finance, on an invoice with something open (finalized)."""
        if not may_write_off(request.user):
            return False
        return object_id is None or (
            Invoice.objects.filter(pk=object_id, status=Invoice.Status.FINALIZED).exists()
        )

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/write-off/",
                self.admin_site.admin_view(self.write_off_view),
                name="invoicing_invoice_write_off",
            )
        ]
        return urls + super().get_urls()

    def write_off_view(self, request, pk):
        if not may_write_off(request.user):
            raise PermissionDenied
        invoice = self.get_object(request, pk)
        if invoice is None:
            raise Http404(f"No invoice with id {pk}.")
        initial = {
            "amount": round_money(invoice.open_amount, invoice.currency),
            "on": clock.today(),
        }
        form = WriteOffForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic(durable=True):
                    write_off = services.invoice_write_off(
                        invoice=invoice,
                        amount=data["amount"],
                        reason=data["reason"],
                        on=data["on"],
                        by=request.user,
                    )
            except DomainError as exc:
                # Nothing was written: the figure the service refused carries the message.
                message = exc.message
                field = (
                    "reason"
                    if "reason" in message
                    else "amount"
                    if "open" in message or "amount" in message
                    else None
                )
                form.add_error(field, message)
            else:
                invoice.refresh_from_db()
                self.message_user(
                    request,
                    f"{format_money(write_off.amount, invoice.currency)} of invoice {invoice} "
                    f"written off; {format_money(invoice.open_amount, invoice.currency)} is "
                    "left open.",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:invoicing_invoice_change", args=[pk]))
        title = f"Write off invoice {invoice}"
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "content_title": title,
            "model_admin": self,
            "opts": self.model._meta,
            "original": invoice,
            "invoice": invoice,
            "state": selectors.invoice_state(invoice),
            "form": form,
        }
        return TemplateResponse(request, "admin/receivables/write_off.html", context)


# The customer admin with a receivables panel (open, overdue, credit balance): a subclass
# registered in place of customers' (customers does not import receivables).
admin.site.unregister(Customer)


@admin.register(Customer)
class CustomerAdmin(customers_admin.CustomerAdmin):
    actions_detail = ["detail_statement"]

    @action(description="Statement", icon="receipt_long", permissions=["statement"])
    def detail_statement(self, request, object_id):
        return redirect(reverse("receivables-statement", args=[object_id]))

    def has_statement_permission(self, request, object_id=None):
        """Finance (who can view payments); the page itself checks the Finance role."""
        return request.user.has_perm("receivables.view_payment")

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
