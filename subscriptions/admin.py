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
from core.formatting import format_day, format_money, format_price, format_quantity
from core.money import plain, round_money
from subscriptions import services
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionItem


class ReadOnlyInline(ReadOnly, TabularInline):
    extra = 0
    tab = True


class SubscriptionItemInline(ReadOnlyInline):
    """Every version of every item: what was in force from when, and which change made it."""

    model = SubscriptionItem
    verbose_name = "item version"
    fields = [
        "name",
        "metric",
        "billing_timing",
        "quantity_shown",
        "price",
        "list_price",
        "ramp",
        "in_force",
        "by_change",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("change", "ended_by")

    @admin.display(description="In force")
    def in_force(self, item):
        """[from, to): "from the start", "until Jan 15, 2026" (the last day included)."""
        if item.is_one_time:
            return "once, on the first invoice" if item.change_id is None else "once"
        start = f"from {format_day(item.starts_on)}" if item.starts_on else "from the start"
        if item.ends_on is None:
            return f"{start}, to the end of the term"
        last = item.ends_on - dt.timedelta(days=1)
        return f"{start} to {format_day(last)}"

    @admin.display(description="Change")
    def by_change(self, item):
        parts = []
        if item.change_id:
            parts.append(f"added by: {item.change.get_kind_display().lower()}")
        if item.ended_by_id:
            parts.append(f"ended by: {item.ended_by.get_kind_display().lower()}")
        return "; ".join(parts) or "the contract as signed"

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
    # Changes go through services: the contract pages (invoicing/admin_contract.py) and quotes.
    # Finance edits `renewal` (renew automatically or end) and `unused_credit_on_cancel`.
    readonly_fields += ["status", "revision", "cancellation", "change_history"]
    exclude = ["canceled_on", "canceled_at", "canceled_by", "cancel_reason"]
    inlines = [SubscriptionItemInline, BillingPeriodInline]
    actions_detail = ["detail_change_quantity", "detail_cancel", "detail_renew"]

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

    @admin.display(description="Cancellation")
    def cancellation(self, obj):
        if obj.canceled_on is None:
            return "—"
        by = obj.canceled_by.get_username() if obj.canceled_by else "the API"
        at = f"{format_day(obj.canceled_at.date())}" if obj.canceled_at else "?"
        return format_html(
            "Service ends {} (not included) · cancelled by {} on {}<br>Why: {}",
            format_day(obj.canceled_on),
            by,
            at,
            obj.cancel_reason or "—",
        )

    @admin.display(description="Change history")
    def change_history(self, obj):
        """Every change of the contract: kind, from when, what, by whom, when, why."""
        changes = obj.changes.select_related("by").order_by("at", "id")
        if not changes:
            return "No change since the contract was signed."
        rows = [
            (
                change.get_kind_display(),
                format_day(change.effective_date),
                change.description,
                change.by.get_username() if change.by else change.source or "—",
                f"{format_day(change.at.date())} {change.at:%H:%M}",
                change.reason or "—",
            )
            for change in changes
        ]
        return format_html(
            '<table class="text-sm"><thead><tr><th>Change</th><th>From</th><th>What</th>'
            "<th>By</th><th>When</th><th>Why</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                '<tr><td class="pr-3">{}</td><td class="pr-3" style="white-space:nowrap">{}</td>'
                '<td class="pr-3">{}</td><td class="pr-3">{}</td>'
                '<td class="pr-3" style="white-space:nowrap">{}</td><td>{}</td></tr>',
                rows,
            ),
        )

    # The pages are invoicing's (they bill at once): linked by URL name, not imported.
    @action(description="Change quantity", icon="group_add", permissions=["change_contract"])
    def detail_change_quantity(self, request, object_id):
        return redirect(reverse("subscriptions-change-quantity", args=[object_id]))

    @action(description="Cancel subscription", icon="cancel", permissions=["change_contract"])
    def detail_cancel(self, request, object_id):
        return redirect(reverse("subscriptions-cancel", args=[object_id]))

    def has_change_contract_permission(self, request, object_id=None):
        """Finance, on a live subscription."""
        if not request.user.has_perm("subscriptions.change_contract"):
            return False
        return object_id is None or (
            Subscription.objects.filter(
                pk=object_id, status=Subscription.Status.ACTIVE, canceled_on__isnull=True
            ).exists()
        )


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
