"""The quote admin's amendments: the "Amend" page a subscription's page links to (it asks for the
effective date and opens the new amendment quote), and on an amendment quote's page the banner
(what it amends, from when, on which revision) with each line's status against the contract in
force, and the "invoice the proration now" checkbox.

`QuoteAmendmentsMixin` goes first in QuoteAdmin's bases (before QuoteDocumentsMixin); the
subscription's page links to `admin:quotes_quote_amend` by name (subscriptions does not import
quotes).
"""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from unfold.widgets import UnfoldAdminSingleDateWidget

from core import clock
from core.admin import LINK_CLASSES
from core.errors import DomainError
from core.formatting import format_day
from quotes.amendments import LineStatus, amendment_plan, quote_amendment_create
from quotes.models import Quote
from quotes.totals import read_extras
from subscriptions.models import Subscription

STATUS_TEXT = {
    LineStatus.UNCHANGED: "Unchanged",
    LineStatus.CHANGED: "Changed",
    LineStatus.NEW: "New",
    LineStatus.REMOVED: "Removed",
}
# Fields an amendment quote does not edit: its dates and term follow from the contract.
NOT_AMENDED = {"start_date", "term_months", "billing_interval_months", "subscription_external_id"}


class AmendForm(forms.Form):
    effective_date = forms.DateField(
        label="Effective date",
        widget=UnfoldAdminSingleDateWidget,
        help_text="The day the new terms take effect; the term's end does not move (co-termed).",
    )


def last_day(subscription: Subscription) -> dt.date:
    return subscription.end_date - dt.timedelta(days=1)


class QuoteAmendmentsMixin:
    """`amend/<subscription id>/` (quotes_quote_amend) and the amendment quote's page parts."""

    def get_urls(self):
        urls = [
            path(
                "amend/<int:subscription_id>/",
                self.admin_site.admin_view(self.amend_view),
                name="quotes_quote_amend",
            )
        ]
        return urls + super().get_urls()

    def amend_view(self, request, subscription_id):
        if not self.has_add_permission(request):
            raise PermissionDenied
        subscription = get_object_or_404(
            Subscription.objects.select_related("customer", "plan"), pk=subscription_id
        )
        form = AmendForm(
            request.POST if request.method == "POST" else None,
            initial={"effective_date": clock.today()},
        )
        if request.method == "POST" and form.is_valid():
            try:
                quote = quote_amendment_create(
                    subscription=subscription,
                    by=request.user,
                    effective_date=form.cleaned_data["effective_date"],
                )
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(
                    request,
                    f"Amendment quote {quote.number} drafted from the contract in force on "
                    f"{format_day(quote.effective_date)}: change its lines, then submit it.",
                )
                return redirect(reverse("admin:quotes_quote_change", args=[quote.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Amend subscription {subscription.external_id}",
            "subscription": subscription,
            "last_day": last_day(subscription),
            "form": form,
        }
        return TemplateResponse(request, "admin/quotes/quote/amend.html", context)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or obj.kind != Quote.Kind.AMENDMENT:
            return fieldsets
        shown = []
        for name, options in fieldsets:
            fields = [f for f in options["fields"] if f not in NOT_AMENDED]
            if name is None:
                fields = ["amendment_banner", *fields]
            elif name == "Terms":
                fields = ["invoice_now", *fields]
            shown.append((name, {**options, "fields": fields}))
        return shown

    @admin.display(description="Amendment")
    def amendment_banner(self, obj):
        if obj is None or not obj.pk or obj.kind != Quote.Kind.AMENDMENT or not obj.contract_id:
            return "—"
        contract = obj.contract
        link = format_html(
            '<a href="{}" class="{}">{}</a>',
            reverse("admin:subscriptions_subscription_change", args=[contract.pk]),
            LINK_CLASSES,
            contract.external_id,
        )
        banner = format_html(
            '<p id="amendment-banner" class="font-semibold">Amendment of {} from {}, co-termed to '
            "{}; drafted on revision {}.</p>",
            link,
            format_day(obj.effective_date),
            format_day(last_day(contract)),
            obj.base_revision,
        )
        if obj.status == Quote.Status.ACCEPTED:
            return banner
        if contract.revision != obj.base_revision:
            banner += format_html(
                '<p class="text-red-600">The contract has changed since (revision {}): this '
                "quote will be refused at acceptance. Amend the subscription again from its "
                "page.</p>",
                contract.revision,
            )
            return banner
        return banner + self._line_statuses(obj)

    def _line_statuses(self, quote):
        lines = list(quote.lines.select_related("charge", "replaces"))
        try:
            plan = amendment_plan(quote, lines, read_extras(lines))
        except (DomainError, ArithmeticError, KeyError, ValueError) as exc:
            return format_html(
                '<p class="text-red-600">The lines cannot be compared with the contract yet: {}'
                "</p>",
                getattr(exc, "message", str(exc)),
            )
        rows = [(line.name, STATUS_TEXT[plan.status[line.pk]]) for line in lines]
        rows += [(item.name, STATUS_TEXT[LineStatus.REMOVED]) for item in plan.removed]
        return format_html(
            '<table id="amendment-lines" class="text-sm mt-2"><tr><th class="pr-4 text-left">'
            'Line</th><th class="text-left">Against the contract in force</th></tr>{}</table>',
            format_html_join(
                "", '<tr><td class="pr-4">{}</td><td>{}</td></tr>', ((n, s) for n, s in rows)
            ),
        )
