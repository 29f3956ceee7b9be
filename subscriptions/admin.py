import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import action

from catalog import rating
from catalog.pricing_display import pricing_summary, pricing_table_html
from core.admin import ReadOnly
from core.errors import DomainError
from core.formatting import format_money, format_price, format_quantity
from core.money import plain, round_money
from subscriptions import services
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionItem


class ReadOnlyInline(ReadOnly, TabularInline):
    extra = 0
    tab = True


class SubscriptionItemInline(ReadOnlyInline):
    model = SubscriptionItem
    fields = ["name", "metric", "billing_timing", "quantity_shown", "price", "list_price", "ramp"]
    readonly_fields = fields

    @admin.display(description="Quantity")
    def quantity_shown(self, item):
        return format_quantity(item.quantity) if item.metric_id is None else "metered"

    @admin.display(description="Net price and tiers")
    def price(self, item):
        currency = item.subscription.currency
        if item.is_one_time:  # billed once: "per period" would mislead
            summary = pricing_summary(item.pricing, currency).replace(" per period", ", once")
            return format_html('<span class="pricing">{}</span>', summary)
        return pricing_table_html(item.pricing, currency)

    @admin.display(description="List price and discount")
    def list_price(self, item):
        """The catalog price beside the net one, when they differ, and the discount granted."""
        currency = item.subscription.currency
        parts = []
        if item.list_pricing and item.list_pricing != item.pricing:
            parts.append(pricing_table_html(item.list_pricing, currency))
        discounts = []
        if item.discount_percent:
            discounts.append(f"{plain(item.discount_percent)}% off")
        if item.discount_amount:
            discounts.append(f"{format_price(item.discount_amount, currency)} off per unit")
        if discounts:
            parts.append(format_html('<div class="text-xs">{}</div>', ", ".join(discounts)))
        return format_html_join("", "{}", ((part,) for part in parts)) if parts else "—"

    @admin.display(description="Ramp")
    def ramp(self, item):
        """A ramp as a small table: each phase's dates, quantity, price and fee per period."""
        if not item.phases:
            return "—"
        currency = item.subscription.currency
        rows = []
        for phase in item.phases:
            start, end = dt.date.fromisoformat(phase["start"]), dt.date.fromisoformat(phase["end"])
            quantity = Decimal(str(phase["quantity"]))
            fee = round_money(rating.rate(phase["pricing"], quantity).amount, currency)
            rows.append(
                (
                    f"{start:%b %-d, %Y} – {end - dt.timedelta(days=1):%b %-d, %Y}",
                    format_quantity(quantity),
                    pricing_summary(phase["pricing"], currency),
                    format_money(fee, currency),
                )
            )
        return format_html(
            '<table class="text-sm"><thead><tr><th>Phase</th><th>Quantity</th><th>Price</th>'
            '<th class="text-right">Per period</th></tr></thead><tbody>{}</tbody></table>',
            format_html_join(
                "",
                '<tr><td style="white-space:nowrap">{}</td><td class="text-right">{}</td>'
                '<td>{}</td><td class="text-right" style="white-space:nowrap">{}</td></tr>',
                rows,
            ),
        )


class BillingPeriodInline(ReadOnlyInline):
    model = BillingPeriod
    fields = ["sequence", "start_date", "end_date", "billed_from", "advance"]
    readonly_fields = fields

    @admin.display(description="Billed in advance")
    def advance(self, period):
        return format_money(period.advance_amount, period.subscription.currency)


@admin.register(Subscription)
class SubscriptionAdmin(SimpleHistoryAdmin, ModelAdmin):
    """Subscriptions are created by accepting a quote (or the service); here they are read."""

    list_display = ["external_id", "customer", "plan", "start_date", "term_months", "status"]
    list_filter = [("status", ChoicesDropdownFilter), ("plan", RelatedDropdownFilter)]
    list_select_related = ["customer", "plan"]
    search_fields = ["external_id", "customer__name", "customer__external_id"]
    readonly_fields = [
        "external_id",
        "customer",
        "plan",
        "currency",
        "start_date",
        "trial_end_date",
        "term_months",
        "billing_interval_months",
        "payment_terms_days",
        "created_at",
    ]
    readonly_fields += ["status", "revision", "canceled_on", "canceled_at", "canceled_by"]
    readonly_fields += ["cancel_reason"]  # changes go through services (subscriptions.changes)
    # Finance edits `renewal` (renew automatically or end) and `unused_credit_on_cancel`.
    inlines = [SubscriptionItemInline, BillingPeriodInline]
    actions_detail = ["detail_renew"]

    @action(
        description="Renew now (open the renewal quote)", icon="autorenew", permissions=["renew"]
    )
    def detail_renew(self, request, object_id):
        # The quotes admin drafts or opens it (subscriptions does not import quotes).
        return redirect(reverse("admin:quotes_quote_renew", args=[object_id]))

    def has_renew_permission(self, request, object_id=None):
        """Who makes quotes, on a live subscription."""
        if not request.user.has_perm("quotes.add_quote"):
            return False
        live = Subscription.objects.filter(status=Subscription.Status.ACTIVE, canceled_on=None)
        return object_id is None or live.filter(pk=object_id).exists()

    def has_add_permission(self, request):
        return False


class PrepaidCreditForm(forms.ModelForm):
    class Meta:
        model = PrepaidCredit
        fields = ["subscription", "metric", "granted", "note"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            services.prepaid_credit_validate(
                subscription=data["subscription"], amount=data["granted"], metric=data.get("metric")
            )
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc
        return data


def _credit_amount(credit: PrepaidCredit, value) -> str:
    """Units of its metric, or money in the subscription's currency."""
    if credit.metric_id:
        return format_quantity(value, credit.metric.code)
    return format_money(value, credit.subscription.currency)


@admin.register(PrepaidCredit)
class PrepaidCreditAdmin(SimpleHistoryAdmin, ModelAdmin):
    """Finance grants prepaid balances; invoicing draws them down (see each line's credit uses)."""

    list_display = [
        "subscription",
        "metric",
        "granted_shown",
        "remaining_shown",
        "granted_on",
        "note",
    ]
    list_select_related = ["subscription", "metric"]
    search_fields = ["subscription__external_id", "subscription__customer__name", "note"]
    autocomplete_fields = ["subscription"]
    form = PrepaidCreditForm

    @admin.display(description="Granted", ordering="granted")
    def granted_shown(self, credit):
        return _credit_amount(credit, credit.granted)

    @admin.display(description="Remaining", ordering="remaining")
    def remaining_shown(self, credit):
        return _credit_amount(credit, credit.remaining)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["subscription", "metric", "granted_shown", "remaining_shown", "granted_on"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return super().get_fields(request, obj)
        return ["subscription", "metric", "granted_shown", "remaining_shown", "granted_on", "note"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        granted = services.prepaid_credit_grant(
            subscription=data["subscription"],
            amount=data["granted"],
            metric=data.get("metric"),
            note=data.get("note", ""),
        )
        obj.pk = granted.pk
