from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from simple_history.admin import SimpleHistoryAdmin

from catalog import rating
from catalog.models import BillableMetric, Charge, ChargeTier, Plan, PlanAlertDefault
from core.errors import DomainError
from core.forms import PlainDecimalField
from core.money import plain, round_money

PLAIN_DECIMALS = {models.DecimalField: {"form_class": PlainDecimalField}}


@admin.register(BillableMetric)
class BillableMetricAdmin(SimpleHistoryAdmin):
    list_display = [
        "code",
        "name",
        "aggregation",
        "field_name",
        "group_by",
        "recurring",
        "accepts_negative",
    ]
    list_filter = ["aggregation", "recurring", "accepts_negative"]
    search_fields = ["code", "name"]
    fields = [
        "code",
        "name",
        "description",
        "aggregation",
        "field_name",
        "filters",
        "group_by",
        "recurring",
        "accepts_negative",
    ]


class TierFormSet(BaseInlineFormSet):
    """Tiers are checked together: from 0, contiguous, only the last unbounded."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        tiers = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if not rating.pricing_model(self.instance.charge_model, strict=False).tiered:
            if tiers:
                raise ValidationError(
                    f"Only {rating.model_names(lambda m: m.tiered)} charges have tiers: remove "
                    "them or change the model."
                )
            return
        tiers.sort(key=lambda t: t["from_units"])
        problems = rating.tier_problems(
            [
                {
                    "from": str(t["from_units"]),
                    "up_to": None if t.get("up_to") is None else str(t["up_to"]),
                    "unit_price": str(t["unit_price"]),
                    "flat_fee": str(t.get("flat_fee") or 0),
                }
                for t in tiers
            ]
        )
        if problems:
            raise ValidationError(problems)


class ChargeTierInline(admin.TabularInline):
    model = ChargeTier
    formset = TierFormSet
    extra = 0
    fields = ["from_units", "up_to", "unit_price", "flat_fee"]
    formfield_overrides = PLAIN_DECIMALS


@admin.register(Charge)
class ChargeAdmin(SimpleHistoryAdmin):
    list_display = ["name", "plan", "key", "charge_model", "metric", "currency", "effective_from"]
    list_filter = ["plan", "charge_model", "currency"]
    search_fields = ["name", "key", "plan__code"]
    inlines = [ChargeTierInline]
    formfield_overrides = PLAIN_DECIMALS
    fieldsets = [
        (None, {"fields": ["plan", "name", "key", "position"]}),
        (
            "What is priced",
            {
                "fields": ["metric", "group_value", "unit_name", "default_quantity"],
                "description": "No metric: a fixed fee (platform fee, seats) on the quoted "
                "quantity. A metric: usage, measured from events.",
            },
        ),
        (
            "Price",
            {
                "fields": [
                    "charge_model",
                    "billing_timing",
                    "prorated",
                    "currency",
                    "unit_price",
                    "package_size",
                    "package_price",
                    "free_units",
                ],
                "description": "Graduated and volume charges take their prices from the tiers "
                "below; the tier up to N includes N.",
            },
        ),
        (
            "Percentage of an amount",
            {
                "fields": [
                    "percentage_rate",
                    "fixed_fee",
                    "free_events",
                    "min_per_event",
                    "max_per_event",
                ]
            },
        ),
        ("Per period", {"fields": ["min_amount", "max_amount"]}),
        ("Version", {"fields": ["effective_from"]}),
    ]


class ChargeInlineForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        tiered = rating.pricing_model(data.get("charge_model"), strict=False).tiered
        if tiered and not (self.instance.pk and self.instance.tiers.exists()):
            names = rating.model_names(lambda m: m.tiered, last="or")
            raise forms.ValidationError(
                f"A {names} charge needs tiers: create it under Charges → Add, where "
                "its tiers are edited."
            )
        return data


class ChargeInline(admin.TabularInline):
    model = Charge
    form = ChargeInlineForm
    extra = 0
    show_change_link = True
    fields = [
        "position",
        "name",
        "metric",
        "group_value",
        "charge_model",
        "billing_timing",
        "currency",
        "effective_from",
        "unit_price",
    ]
    formfield_overrides = PLAIN_DECIMALS


class PlanAlertDefaultInline(admin.TabularInline):
    """Alerts every subscription to the plan gets; copied to subscriptions by the alert job."""

    model = PlanAlertDefault
    extra = 0
    fields = ["metric", "threshold", "name"]
    formfield_overrides = PLAIN_DECIMALS
    verbose_name = "default usage alert"
    verbose_name_plural = "Default usage alerts (metric empty: the estimated bill)"


def price_preview(plan: Plan, units: Decimal, events: int, event_amount: Decimal) -> list[dict]:
    """What each charge of the plan costs: usage at a quantity, percentage charges at a number
    of events of one amount, fixed fees at their usual quantity."""
    rows = []
    for charge in plan.charges.select_related("metric").prefetch_related("tiers"):
        try:
            if charge.pricing_model.on_amounts:
                rated = rating.rate_events(charge.pricing(), [event_amount] * events)
            elif charge.is_usage:
                rated = rating.rate(charge.pricing(), units)
            else:  # a fixed fee is previewed at its usual quantity (1 platform fee, N seats)
                rated = rating.rate(charge.pricing(), charge.default_quantity)
        except (DomainError, InvalidOperation, TypeError) as exc:
            rows.append({"charge": charge, "error": str(exc)})
            continue
        rows.append(
            {
                "charge": charge,
                "amount": round_money(rated.amount, charge.currency),
                "steps": rated.explanation(),
            }
        )
    return rows


@admin.register(Plan)
class PlanAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "currency", "additional_currencies", "billing_interval_months"]
    list_filter = ["active", "billing_interval_months"]
    search_fields = ["code", "name"]
    inlines = [ChargeInline, PlanAlertDefaultInline]
    fields = [
        "code",
        "name",
        "description",
        "currency",
        "additional_currencies",
        "billing_interval_months",
        "trial_days",
        "active",
    ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        plan = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if plan is not None:
            try:
                units = Decimal(request.GET.get("preview_units", "1000"))
                events = Decimal(request.GET.get("preview_events", "100"))
                event_amount = Decimal(request.GET.get("preview_amount", "100"))
                if not (0 <= units < 10**15 and 0 <= events <= 10_000 and event_amount >= 0):
                    raise InvalidOperation
                if events % 1:
                    raise InvalidOperation
            except InvalidOperation:
                extra_context["preview_error"] = (
                    "Enter units from 0 to under 10^15, a whole number of events from 0 to "
                    "10,000 and a non-negative amount."
                )
                units, events, event_amount = Decimal(1000), Decimal(100), Decimal(100)
            extra_context |= {
                "preview_units": plain(units),
                "preview_events": plain(events),
                "preview_amount": plain(event_amount),
                "preview": price_preview(plan, units, int(events), event_amount),
            }
        return super().change_view(request, object_id, form_url, extra_context)
