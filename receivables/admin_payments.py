"""Finance's cash pages in the admin: record a payment (choose the customer, then the amount and
what it pays among their open invoices), apply a payment's on-account money, un-apply an
application, reverse a payment, and the customers' credit balances with refunds and applications
to invoices.

Every write is one call to receivables.services (or invoicing.balance.credit_balance_apply) in a
durable transaction: the service validates and its message is shown on the field it is about
(an invoice's line, the currency, the reason…); on error nothing is written. The pages are
Finance's (may_handle_cash); the Payment admin (receivables/admin.py) routes to them."""

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.widgets import (
    UnfoldAdminDecimalFieldWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminSingleDateWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from core import clock
from core.errors import DomainError
from core.formatting import format_money
from core.money import exact_sum, round_money
from customers.models import Customer
from invoicing.balance import credit_balance, credit_balance_apply, credit_balances
from invoicing.models import CreditBalanceEntry, Invoice
from receivables import services
from receivables.admin_views import may_see_receivables
from receivables.models import Payment, PaymentAllocation


def may_handle_cash(user) -> bool:
    """Finance who may record and change payments (the Finance role; a superuser)."""
    return may_see_receivables(user) and user.has_perm("receivables.change_payment")


def _check(request) -> None:
    if not may_handle_cash(request.user):
        raise PermissionDenied


def _context(request, title: str, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "title": title,
        "content_title": title,
        "model_admin": admin.site._registry[Payment],
        "opts": Payment._meta,
        **extra,
    }


def _invoice_named(message: str, invoices) -> Invoice | None:
    """The invoice a service's message is about ("Invoice INV-0007 has $5.00 open: …"), so that
    the message goes on that invoice's line. A number is matched whole (INV-1 is not INV-12)."""
    for invoice in invoices:
        if re.search(rf"(?<![\w-]){re.escape(str(invoice))}(?![\w-])", message):
            return invoice
    return None


def _days_overdue(invoice: Invoice, today: dt.date) -> int:
    return max((today - invoice.due_date).days, 0) if invoice.due_date else 0


# --- Payments › Add -----------------------------------------------------------------------------


class ChooseCustomerForm(forms.Form):
    """Step 1: whose payment (the customer's open invoices come with step 2)."""

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin's own customer field, with its autocomplete (PaymentAdmin.autocomplete_fields).
        model_admin = admin.site._registry[Payment]
        field = model_admin.formfield_for_dbfield(Payment._meta.get_field("customer"), request)
        field.widget = field.widget.widget  # without the add/change links around it
        self.fields["customer"] = field
        self.fields["customer"].help_text = "Their open invoices are listed on the next step."


class PaymentForm(forms.Form):
    """Step 2: the payment and, per open invoice (oldest due first), the amount to apply."""

    currency = forms.CharField(
        max_length=3,
        widget=UnfoldAdminTextInputWidget,
        help_text="The customer's billing currency; a payment in another currency is refused.",
    )
    amount = forms.DecimalField(widget=UnfoldAdminDecimalFieldWidget)
    received_on = forms.DateField(label="Received on", widget=UnfoldAdminSingleDateWidget)
    method = forms.ChoiceField(choices=Payment.Method.choices, widget=UnfoldAdminSelectWidget)
    reference = forms.CharField(
        max_length=200,
        required=False,
        widget=UnfoldAdminTextInputWidget,
        help_text="The bank's reference or the check number.",
    )
    auto_apply = forms.BooleanField(
        required=False,
        initial=True,
        widget=UnfoldBooleanSwitchWidget,
        label="Apply oldest first automatically",
        help_text="When no amount is entered below: the payment pays the open invoices, oldest "
        "due date first. Off: all of it goes on account.",
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.fields["amount"].help_text = f"In {customer.currency}."
        self.invoices = list(services.open_invoices(customer))
        today = clock.today()
        self.lines = []
        for invoice in self.invoices:
            name = f"apply_{invoice.pk}"
            self.fields[name] = forms.DecimalField(
                required=False,
                label=f"Amount to apply to {invoice}",
                widget=UnfoldAdminDecimalFieldWidget(attrs={"placeholder": "0.00"}),
            )
            self.lines.append(
                {
                    "invoice": invoice,
                    "field": name,
                    "open": round_money(invoice.open_amount, str(invoice.currency)),
                    "days_overdue": _days_overdue(invoice, today),
                }
            )

    def bound_lines(self):
        return [{**line, "bound": self[line["field"]]} for line in self.lines]

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()

    def allocations(self) -> dict[int, Decimal] | None:
        wanted = {
            line["invoice"].pk: self.cleaned_data[line["field"]]
            for line in self.lines
            if self.cleaned_data.get(line["field"]) is not None
        }
        return wanted or None

    def record(self, *, by) -> Payment:
        """payment_record with the form's figures; a DomainError goes on the field it is about."""
        data = self.cleaned_data
        try:
            return services.payment_record(
                customer=self.customer,
                amount=data["amount"],
                currency=data["currency"],
                received_on=data["received_on"],
                method=data["method"],
                reference=data["reference"],
                allocations=self.allocations(),
                auto_apply=data["auto_apply"],
                idempotency_key=data["idempotency_key"],
                created_by=by,
            )
        except DomainError as exc:
            self.add_error(self._field_of(exc.message), exc.message)
            raise

    def _field_of(self, message: str) -> str | None:
        invoice = _invoice_named(message, self.invoices)
        if invoice is not None and f"apply_{invoice.pk}" in self.fields:
            return f"apply_{invoice.pk}"
        if str(self.cleaned_data.get("currency")) != str(self.customer.currency):
            return "currency"
        if "received" in message:
            return "received_on"
        if "payment amount" in message.lower() or "payment's" in message:
            return "amount"
        return None


class _Preview(Exception):
    """Raised to roll back a payment recorded only to show where its money would go."""


@dataclass
class Plan:
    to_invoices: list[tuple[Invoice, Decimal]]
    on_account: Decimal


def _preview(form: PaymentForm, by) -> Plan | None:
    """What the service would do with the payment, recorded and rolled back (nothing is kept)."""
    try:
        with transaction.atomic():
            payment = form.record(by=by)
            rows = list(payment.allocations.select_related("invoice"))
            plan = Plan(
                [(row.invoice, row.amount) for row in rows if row.invoice_id],
                exact_sum(row.amount for row in rows if not row.invoice_id),
            )
            raise _Preview
    except _Preview:
        return plan
    except DomainError:
        return None


def payment_add_view(request):
    """Payments › Add: choose the customer (step 1), then the payment and its applications."""
    if not (may_handle_cash(request.user) and request.user.has_perm("receivables.add_payment")):
        raise PermissionDenied
    customer_id = request.POST.get("customer") or request.GET.get("customer")
    customer = None
    if customer_id and str(customer_id).isdigit():
        customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        # Bound only to a number (the autocomplete widget looks the value up to render it).
        numeric = customer_id and str(customer_id).isdigit()
        choose = ChooseCustomerForm({"customer": customer_id} if numeric else None, request=request)
        if numeric:
            choose.is_valid()  # "Select a valid choice" on the field
        elif customer_id:
            messages.error(request, f"No customer {customer_id!r}: choose one in the list.")
        context = _context(request, "Record a payment", choose=choose, media=choose.media)
        return TemplateResponse(request, "admin/receivables/payment_add.html", context)

    initial = {
        "currency": str(customer.currency),
        "received_on": clock.today(),
        "method": Payment.Method.BANK_TRANSFER,
        "auto_apply": True,
        "idempotency_key": uuid.uuid4().hex,
    }
    form = PaymentForm(request.POST or None, initial=initial, customer=customer)
    plan = None
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            plan = _preview(form, request.user)
        else:
            try:
                with transaction.atomic(durable=True):
                    payment = form.record(by=request.user)
            except DomainError:
                pass  # on its field; nothing was written
            else:
                messages.success(request, recorded_message(payment))
                return redirect(reverse("admin:receivables_payment_change", args=[payment.pk]))
    context = _context(
        request,
        f"Record a payment from {customer}",
        customer=customer,
        form=form,
        lines=form.bound_lines(),
        plan=plan,
        media=form.media,
        open_total=exact_sum(line["open"] for line in form.lines),
        credit=credit_balance(customer),
    )
    return TemplateResponse(request, "admin/receivables/payment_add.html", context)


def recorded_message(payment: Payment) -> str:
    currency = str(payment.currency)
    rows = list(payment.allocations.select_related("invoice"))
    applied = [f"{format_money(r.amount, currency)} to {r.invoice}" for r in rows if r.invoice_id]
    on_account = exact_sum(r.amount for r in rows if not r.invoice_id)
    text = f"Payment of {format_money(payment.amount, currency)} recorded"
    text += f": applied {', '.join(applied)}" if applied else ": applied to no invoice"
    if on_account:
        text += f"; {format_money(on_account, currency)} on account (credit balance)"
    return text + "."


# --- a payment's actions --------------------------------------------------------------------------


class ApplyForm(forms.Form):
    invoice = forms.ModelChoiceField(
        queryset=Invoice.objects.none(), widget=UnfoldAdminSelectWidget
    )
    amount = forms.DecimalField(
        required=False,
        widget=UnfoldAdminDecimalFieldWidget,
        help_text="Empty: as much as both allow (the on-account money, the invoice's open amount).",
    )

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["invoice"]
        field.queryset = services.open_invoices(customer)
        field.label_from_instance = lambda i: (
            f"{i} · due {i.due_date:%b %-d, %Y} · {format_money(i.open_amount, i.currency)} open"
        )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,  # the service asks for it, with its own message
        max_length=300,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Required: kept on the allocation rows, shown on the payment's page.",
    )


class ReverseForm(ReasonForm):
    reversed_on = forms.DateField(
        label="Reversed on",
        widget=UnfoldAdminSingleDateWidget,
        help_text="The day the bank returned it: invoices open again from this day.",
    )


def _payment(pk) -> Payment:
    return get_object_or_404(Payment.objects.select_related("customer"), pk=pk)


def _action_page(request, payment, form, *, title, submit, facts, danger=False):
    context = _context(
        request,
        title,
        payment=payment,
        form=form,
        media=form.media,
        submit_label=submit,
        facts=facts,
        danger=danger,
        on_account=services.payment_on_account(payment),
    )
    return TemplateResponse(request, "admin/receivables/payment_action.html", context)


def _back(payment):
    return redirect(reverse("admin:receivables_payment_change", args=[payment.pk]))


def payment_apply_view(request, pk):
    _check(request)
    payment = _payment(pk)
    form = ApplyForm(request.POST or None, customer=payment.customer)
    if request.method == "POST" and form.is_valid():
        invoice = form.cleaned_data["invoice"]
        try:
            with transaction.atomic(durable=True):
                amount_before = invoice.open_amount
                invoice = services.payment_apply(
                    payment=payment, invoice=invoice, amount=form.cleaned_data["amount"],
                    by=request.user,
                )  # fmt: skip
        except DomainError as exc:
            form.add_error(
                "amount" if "nothing left" not in exc.message else "invoice", exc.message
            )
        else:
            applied = amount_before - invoice.open_amount
            messages.success(
                request,
                f"{format_money(applied, payment.currency)} of the payment's on-account money "
                f"applied to {invoice}; {format_money(invoice.open_amount, invoice.currency)} "
                "is left open on it.",
            )
            return _back(payment)
    currency = str(payment.currency)
    on_account = services.payment_on_account(payment)
    facts = [
        f"On account from this payment: {format_money(on_account, currency)}",
        f"{payment.customer}'s credit balance: "
        f"{format_money(credit_balance(payment.customer, currency), currency)}",
    ]
    return _action_page(
        request,
        payment,
        form,
        title=f"Apply on-account money of {payment}",
        submit="Apply",
        facts=facts,
    )


def payment_unapply_view(request, pk, allocation_pk):
    _check(request)
    payment = _payment(pk)
    allocation = get_object_or_404(
        PaymentAllocation.objects.select_related("invoice"),
        pk=allocation_pk,
        payment=payment,
    )
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic(durable=True):
                invoice = services.allocation_unapply(
                    allocation=allocation, reason=form.cleaned_data["reason"], by=request.user
                )
        except DomainError as exc:
            form.add_error("reason" if "reason" in exc.message else None, exc.message)
        else:
            messages.success(
                request,
                f"Un-applied from {invoice}: it is open again "
                f"({format_money(invoice.open_amount, invoice.currency)}); the money is on "
                "account, in the customer's credit balance.",
            )
            return _back(payment)
    currency = str(payment.currency)
    net = services.allocation_net(allocation)
    facts = [
        f"Applied to {allocation.invoice or 'account'} on {allocation.applied_on:%b %-d, %Y}: "
        f"{format_money(allocation.amount, currency)} (still applied: "
        f"{format_money(net, currency)})",
        "The invoice opens again by that amount; the money goes on account.",
    ]
    return _action_page(
        request,
        payment,
        form,
        title=f"Un-apply {payment} from {allocation.invoice or 'account'}",
        submit="Un-apply",
        facts=facts,
    )


def payment_reverse_view(request, pk):
    _check(request)
    payment = _payment(pk)
    form = ReverseForm(request.POST or None, initial={"reversed_on": clock.today()})
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic(durable=True):
                reopened = services.payment_reverse(
                    payment=payment,
                    reason=form.cleaned_data["reason"],
                    on=form.cleaned_data["reversed_on"],
                    by=request.user,
                )
        except DomainError as exc:
            field = "reason" if "reason" in exc.message else None
            field = "reversed_on" if "before it was received" in exc.message else field
            form.add_error(field, exc.message)
        else:
            names = ", ".join(sorted({str(invoice) for invoice in reopened}))
            messages.warning(
                request,
                f"Payment reversed on {form.cleaned_data['reversed_on']:%b %-d, %Y}. "
                + (f"Open again: {names}." if names else "No invoice opened again."),
            )
            return _back(payment)
    currency = str(payment.currency)
    facts = [
        f"Received {payment.received_on:%b %-d, %Y}, {format_money(payment.amount, currency)}"
        f"{' · ' + payment.reference if payment.reference else ''}",
        "Every invoice it paid opens again; what it put on account leaves the credit balance "
        "(if that money was already applied, those invoices open again too, newest first).",
    ]
    standing = [
        f"{row.invoice} ({format_money(services.allocation_net(row), currency)})"
        for row in payment.allocations.filter(invoice__isnull=False, amount__gt=0).select_related(
            "invoice"
        )
        if services.allocation_net(row) > 0
    ]
    facts.append(
        f"Paid by it now: {', '.join(standing) or 'no invoice'}; on account "
        f"{format_money(services.payment_on_account(payment), currency)}."
    )
    return _action_page(
        request,
        payment,
        form,
        title=f"Reverse {payment}",
        submit="Reverse the payment",
        facts=facts,
        danger=True,
    )


# --- credit balances ------------------------------------------------------------------------------


def credit_balances_view(request):
    """Receivables › Credit balances: each customer's balance per currency, the totals (the
    unapplied cash) and the links to each customer's ledger."""
    if not may_see_receivables(request.user):
        raise PermissionDenied
    balances = credit_balances()
    customers = Customer.objects.in_bulk({customer_id for customer_id, _ in balances})
    rows = sorted(
        (
            {
                "customer": customers[customer_id],
                "currency": currency,
                "balance": amount,
                "link": reverse("receivables-credit-balance", args=[customer_id]),
            }
            for (customer_id, currency), amount in balances.items()
        ),
        key=lambda row: (row["currency"], row["customer"].name),
    )
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + row["balance"]
    context = _context(
        request, "Credit balances", rows=rows, totals=sorted(totals.items()), customers=customers
    )
    return TemplateResponse(request, "admin/receivables/credit_balances.html", context)


class RefundForm(forms.Form):
    amount = forms.DecimalField(widget=UnfoldAdminDecimalFieldWidget)
    refunded_on = forms.DateField(label="Refunded on", widget=UnfoldAdminSingleDateWidget)
    method = forms.ChoiceField(choices=Payment.Method.choices, widget=UnfoldAdminSelectWidget)
    reference = forms.CharField(max_length=200, required=False, widget=UnfoldAdminTextInputWidget)
    reason = forms.CharField(
        max_length=300, widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}), label="Reason"
    )


class CreditApplyForm(ApplyForm):
    amount = forms.DecimalField(
        required=False,
        widget=UnfoldAdminDecimalFieldWidget,
        help_text="Empty: as much as both allow (the balance, the invoice's open amount).",
    )


def credit_balance_view(request, customer_id: int):
    """One customer's credit balance: the ledger of its entries, a refund, an application."""
    if not may_see_receivables(request.user):
        raise PermissionDenied
    customer = get_object_or_404(Customer, pk=customer_id)
    currency = str(customer.currency)
    refund = RefundForm(
        request.POST if "refund" in request.POST else None,
        initial={"refunded_on": clock.today(), "method": Payment.Method.BANK_TRANSFER},
        prefix="refund",
    )
    apply = CreditApplyForm(
        request.POST if "apply" in request.POST else None, customer=customer, prefix="apply"
    )
    if request.method == "POST":
        _check(request)
        if "refund" in request.POST and refund.is_valid():
            data = refund.cleaned_data
            try:
                with transaction.atomic(durable=True):
                    made = services.refund_record(
                        customer=customer,
                        amount=data["amount"],
                        refunded_on=data["refunded_on"],
                        method=data["method"],
                        reference=data["reference"],
                        reason=data["reason"],
                        by=request.user,
                    )
            except DomainError as exc:
                refund.add_error("amount", exc.message)
            else:
                messages.success(
                    request,
                    f"{format_money(made.amount, made.currency)} refunded to {customer}; the "
                    f"credit balance is now {format_money(credit_balance(customer), currency)}.",
                )
                return redirect(reverse("receivables-credit-balance", args=[customer.pk]))
        if "apply" in request.POST and apply.is_valid():
            invoice = apply.cleaned_data["invoice"]
            try:
                with transaction.atomic(durable=True):
                    applied = credit_balance_apply(
                        invoice=invoice, amount=apply.cleaned_data["amount"]
                    )
            except DomainError as exc:
                apply.add_error("amount", exc.message)
            else:
                invoice.refresh_from_db()
                if applied:
                    text = (
                        f"{format_money(applied, currency)} of the credit balance applied to "
                        f"{invoice}; {format_money(invoice.open_amount, currency)} is left open "
                        "on it."
                    )
                    messages.success(request, text)
                else:
                    messages.warning(request, "Nothing applied: the credit balance is empty.")
                return redirect(reverse("receivables-credit-balance", args=[customer.pk]))
    entries = list(
        CreditBalanceEntry.objects.filter(customer=customer)
        .select_related("invoice", "credit_note")
        .order_by("currency", "effective_on", "id")
    )
    running: dict[str, Decimal] = {}
    for entry in entries:
        running[str(entry.currency)] = running.get(str(entry.currency), Decimal(0)) + entry.amount
        entry.running = running[str(entry.currency)]
    entries.reverse()  # newest first, each with the balance after it
    context = _context(
        request,
        f"Credit balance: {customer}",
        customer=customer,
        balances=sorted(running.items(), key=lambda item: (item[0] != currency, item[0])),
        balance=credit_balance(customer),
        entries=entries,
        refund=refund,
        apply=apply,
        may_write=may_handle_cash(request.user),
        media=refund.media + apply.media,
    )
    return TemplateResponse(request, "admin/receivables/credit_balance.html", context)
