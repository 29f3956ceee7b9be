from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from simple_history.admin import SimpleHistoryAdmin

from catalog import rating
from catalog.models import BillableMetric, Charge, ChargeTier, Plan
from core.errors import DomainError
from core.forms import PlainDecimalField
from core.money import plain, round_money

PLAIN_DECIMALS = {models.DecimalField: {"form_class": PlainDecimalField}}


@admin.register(BillableMetric)
class BillableMetricAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "aggregation", "field_name", "group_by", "recurring"]
    list_filter = ["aggregation", "recurring"]
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
        tiered = self.instance.charge_model in Charge.TIERED
        if not tiered:
            if tiers:
                raise ValidationError(
                    "Only graduated and volume charges have tiers: remove them or change the model."
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
        tiered = data.get("charge_model") in Charge.TIERED
        if tiered and not (self.instance.pk and self.instance.tiers.exists()):
            raise forms.ValidationError(
                "A graduated or volume charge needs tiers: create it under Charges → Add, where "
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


def price_preview(plan: Plan, units: Decimal, event_amount: Decimal) -> list[dict]:
    """What each charge of the plan costs at a quantity (or N events of an amount)."""
    rows = []
    for charge in plan.charges.select_related("metric").prefetch_related("tiers"):
        try:
            if charge.charge_model == Charge.Model.PERCENTAGE:
                rated = rating.rate_events(charge.pricing(), [event_amount] * int(units))
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
    inlines = [ChargeInline]
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
                event_amount = Decimal(request.GET.get("preview_amount", "100"))
                if not 0 <= units <= 1_000_000 or event_amount < 0 or units % 1:
                    raise InvalidOperation
            except InvalidOperation:
                extra_context["preview_error"] = (
                    "Enter a whole number of units between 0 and 1,000,000 and a non-negative "
                    "amount."
                )
                units, event_amount = Decimal(1000), Decimal(100)
            extra_context |= {
                "preview_units": plain(units),
                "preview_amount": plain(event_amount),
                "preview": price_preview(plan, units, event_amount),
            }
        return super().change_view(request, object_id, form_url, extra_context)
