"""Finance's contract pages for one subscription: "Change quantity" (seats, without a quote) and
"Cancel subscription". They live in invoicing because each may bill at once (a proration invoiced
now, the credit note of a cancellation's unused prepaid time): subscriptions does not import
invoicing. Registered in config/urls.py under admin/subscriptions/subscription/<pk>/…, wrapped by
admin.site.admin_view; subscriptions/admin.py links to them by URL name.

A refusal (a date outside the term, a quantity unchanged, a concurrent change) is shown on the
field it is about and nothing is saved."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.widgets import (
    UnfoldAdminDecimalFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminSingleDateWidget,
    UnfoldAdminTextareaWidget,
    UnfoldBooleanSwitchWidget,
)

from core import clock
from core.errors import Conflict, DomainError
from core.formatting import format_money, format_quantity
from invoicing.models import CreditNote, Invoice
from invoicing.services import subscription_bill_now
from subscriptions.changes import (
    items_in_force,
    period_in_progress,
    subscription_cancel,
    subscription_set_quantity,
)
from subscriptions.models import Subscription, SubscriptionItem


def may_change_contract(user, subscription: Subscription) -> bool:
    return user.has_perm("subscriptions.change_contract") and (
        subscription.status == Subscription.Status.ACTIVE and subscription.canceled_on is None
    )


class QuantityForm(forms.Form):
    item = forms.TypedChoiceField(
        coerce=int,
        widget=UnfoldAdminSelectWidget,
        help_text="A fixed fee in force today (usage is measured; a ramp changes by quote).",
    )
    quantity = forms.DecimalField(
        min_value=0, widget=UnfoldAdminDecimalFieldWidget, label="New quantity"
    )
    effective_date = forms.DateField(
        widget=UnfoldAdminSingleDateWidget,
        label="From",
        help_text="The first day at the new quantity (inside the term, not before the billing "
        "period in progress).",
    )
    invoice_now = forms.BooleanField(
        required=False,
        widget=UnfoldBooleanSwitchWidget,
        label="Invoice the proration now",
        help_text="On an invoice of its own at once; off: on the next invoice.",
    )
    reason = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}), help_text="Kept in the history."
    )

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        today = clock.today()
        self.items = {
            item.pk: item
            for item in items_in_force(subscription, max(today, subscription.start_date))
            if not item.is_usage and not item.phases
        }
        self.fields["item"].choices = [
            (pk, f"{item.name} ({format_quantity(item.quantity)} {item.unit_name}s)")
            for pk, item in self.items.items()
        ]
        self.fields["effective_date"].initial = today


class CancelForm(forms.Form):
    when = forms.ChoiceField(
        widget=UnfoldAdminRadioSelectWidget,
        label="Cancel",
        initial="period_end",
    )
    effective_date = forms.DateField(
        required=False,
        widget=UnfoldAdminSingleDateWidget,
        label="From",
        help_text="For “From a date”: the service ends that day (not included); the unused "
        "prepaid time is credited at once.",
    )
    reason = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Why: kept on the subscription and in its history.",
    )

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        current = period_in_progress(subscription, clock.today())
        end = current.end_date if current else subscription.start_date
        self.fields["when"].choices = [
            (
                "period_end",
                f"At the end of the period in progress ({end:%b} {end.day}, {end.year})",
            ),
            ("date", "From a date"),
        ]

    def clean(self):
        data = super().clean()
        if data.get("when") == "date" and not data.get("effective_date"):
            self.add_error("effective_date", "Give the date the service ends.")
        return data


def _subscription(request, pk: int) -> Subscription:
    subscription = Subscription.objects.select_related("customer", "plan").filter(pk=pk).first()
    if subscription is None:
        raise Http404(f"No subscription with id {pk}.")
    if not request.user.has_perm("subscriptions.change_contract"):
        raise PermissionDenied
    return subscription


def _render(request, subscription, *, title, form, submit):
    context = {
        **admin.site.each_context(request),
        "title": title,
        "content_title": title,
        "opts": Subscription._meta,
        "original": subscription,
        "subscription": subscription,
        "form": form,
        "submit_label": submit,
    }
    return TemplateResponse(request, "admin/subscriptions/contract_form.html", context)


def _back(subscription):
    return redirect(reverse("admin:subscriptions_subscription_change", args=[subscription.pk]))


def _refused(request, subscription, form, exc: DomainError, field: str | None):
    """A refusal: on the field it is about (a Conflict is the subscription's state: above)."""
    form.add_error(None if isinstance(exc, Conflict) else field, exc.message)


def quantity_view(request, pk: int):
    subscription = _subscription(request, pk)
    if not may_change_contract(request.user, subscription):
        messages.error(request, f"Subscription {subscription.external_id} is not live.")
        return _back(subscription)
    form = QuantityForm(request.POST or None, subscription=subscription)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        item: SubscriptionItem = form.items[data["item"]]
        today = clock.today()
        try:
            with transaction.atomic(durable=True):
                change = subscription_set_quantity(
                    subscription=subscription,
                    item=item,
                    quantity=data["quantity"],
                    effective_date=data["effective_date"],
                    by=request.user,
                    source="admin",
                    reason=data["reason"],
                    invoice_now=data["invoice_now"],
                    expected_revision=subscription.revision,
                    today=today,
                )
        except DomainError as exc:
            field = "quantity" if data["quantity"] == item.quantity else "effective_date"
            _refused(request, subscription, form, exc, field)
        else:
            said = f"{change.description} from {change.effective_date}."
            if data["invoice_now"]:
                failed = subscription_bill_now(subscription=subscription, today=today)
                invoice = Invoice.objects.filter(change=change).first()
                if failed:
                    said += f" Not invoiced yet ({failed}): the next billing run retries."
                elif invoice is not None:
                    said += (
                        f" Invoice {invoice} issued for "
                        f"{format_money(invoice.total, invoice.currency)}."
                    )
            else:
                said += " The proration is on the next invoice."
            messages.success(request, said)
            return _back(subscription)
    return _render(
        request,
        subscription,
        title=f"Change a quantity of {subscription.external_id}",
        form=form,
        submit="Change the quantity",
    )


def cancel_view(request, pk: int):
    subscription = _subscription(request, pk)
    if not may_change_contract(request.user, subscription):
        messages.error(request, f"Subscription {subscription.external_id} is not live.")
        return _back(subscription)
    form = CancelForm(request.POST or None, subscription=subscription)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        today = clock.today()
        effective_date = data["effective_date"] if data["when"] == "date" else None
        try:
            with transaction.atomic(durable=True):
                change = subscription_cancel(
                    subscription=subscription,
                    reason=data["reason"],
                    effective_date=effective_date,
                    by=request.user,
                    source="admin",
                    today=today,
                )
        except DomainError as exc:
            field = "effective_date" if effective_date else "when"
            _refused(request, subscription, form, exc, field)
        else:
            failed = subscription_bill_now(subscription=subscription, today=today)
            said = f"{subscription.external_id} cancelled from {change.effective_date}."
            if failed:
                said += f" Not settled yet ({failed}): the next billing run retries."
            for note in CreditNote.objects.filter(change=change).order_by("number"):
                said += (
                    f" Credit note {note.number} issued for "
                    f"{format_money(note.total, note.currency)} on invoice {note.invoice}."
                )
            messages.success(request, said)
            return _back(subscription)
    return _render(
        request,
        subscription,
        title=f"Cancel {subscription.external_id}",
        form=form,
        submit="Cancel the subscription",
    )
