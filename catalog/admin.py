from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter

from catalog import rating
from catalog.models import (
    BillableMetric,
    Charge,
    ChargeTier,
    Plan,
    PlanAlertDefault,
    StandaloneSellingPrice,
)
from catalog.pricing_display import pricing_summary, pricing_table_html, step_description
from catalog.selectors import charges_in_force
from core import clock
from core.errors import DomainError
from core.formatting import format_money, format_price, format_quantity
from core.forms import PlainDecimalField
from core.money import plain, round_money

PLAIN_DECIMALS = {models.DecimalField: {"form_class": PlainDecimalField}}


@admin.register(BillableMetric)
class BillableMetricAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ["code", "name", "aggregation", "field_name", "group_by", "recurring"]
    list_filter = [("aggregation", ChoicesDropdownFilter), "recurring", "accepts_negative"]
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


class ChargeTierInline(TabularInline):
    model = ChargeTier
    formset = TierFormSet
    extra = 0
    fields = ["from_units", "up_to", "unit_price", "flat_fee"]
    formfield_overrides = PLAIN_DECIMALS


@admin.register(Charge)
class ChargeAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ["name", "plan", "metric", "price", "effective_from"]
    list_filter = [
        ("plan", RelatedDropdownFilter),
        ("charge_model", ChoicesDropdownFilter),
        "currency",
    ]
    list_select_related = ["plan", "metric"]
    readonly_fields = ["price_table"]
    search_fields = ["name", "key", "plan__code"]
    inlines = [ChargeTierInline]
    formfield_overrides = PLAIN_DECIMALS
    fieldsets = [
        (None, {"fields": ["plan", "name", "key", "position", "price_table"]}),
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

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tiers")  # the Price column

    @admin.display(description="Price")
    def price(self, charge):
        return pricing_summary(charge.pricing(), charge.currency)

    @admin.display(description="Price now")
    def price_table(self, charge):
        return pricing_table_html(charge.pricing(), charge.currency) if charge.pk else "—"


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


class ChargeInline(TabularInline):
    """The plan's charges, each with its price and tiers read out (tiers are edited on the
    charge's own page)."""

    model = Charge
    form = ChargeInlineForm
    extra = 0
    tab = True
    show_change_link = True
    readonly_fields = ["price"]
    fields = [
        "position",
        "name",
        "metric",
        "charge_model",
        "billing_timing",
        "currency",
        "unit_price",
        "price",
    ]
    formfield_overrides = PLAIN_DECIMALS

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tiers")

    @admin.display(description="Price and tiers")
    def price(self, charge):
        return pricing_table_html(charge.pricing(), charge.currency) if charge.pk else "—"


class PlanAlertDefaultInline(TabularInline):
    """Alerts every subscription to the plan gets; copied to subscriptions by the alert job."""

    model = PlanAlertDefault
    extra = 0
    tab = True
    fields = ["metric", "threshold", "name"]
    formfield_overrides = PLAIN_DECIMALS
    verbose_name = "default usage alert"
    verbose_name_plural = "Default usage alerts"  # a tab: short, so that every tab shows


class SspForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.check_overlaps = False  # SspFormSet compares the edited lines together


class SspFormSet(BaseInlineFormSet):
    """The plan's SSP lines are checked together: lines of one charge and currency must not
    overlap, and the error sits on the line that overlaps an earlier one."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        lines = [
            form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        for form in lines:
            form.instance.fill_defaults()
        lines.sort(key=lambda f: f.instance.effective_from)
        for i, form in enumerate(lines):
            line = form.instance
            for earlier in lines[:i]:
                other = earlier.instance
                same = (other.charge_key, other.currency) == (line.charge_key, line.currency)
                if same and line.overlaps(other):
                    for field, message in line.overlap_message(other).items():
                        form.add_error(field if field in form.fields else None, message)
                    break


class SspInline(TabularInline):
    """The plan's SSP price book (finance): what each charge sells for on its own, over dates."""

    model = StandaloneSellingPrice
    form = SspForm
    formset = SspFormSet
    extra = 0
    tab = True
    fields = [
        "charge_key",
        "currency",
        "effective_from",
        "effective_to",
        "amount",
        "percent_of_list",
    ]
    formfield_overrides = PLAIN_DECIMALS
    verbose_name = "standalone selling price"
    verbose_name_plural = "Standalone selling prices"  # none in force: the list price

    def get_formset(self, request, obj=None, **kwargs):
        """The charge key's help names the plan's keys."""
        if obj is not None:
            keys = sorted(set(obj.charges.values_list("key", flat=True)))
            known = ", ".join(keys) or "none yet"
            kwargs["help_texts"] = {"charge_key": f"The key of one of the plan's charges: {known}."}
        return super().get_formset(request, obj, **kwargs)


PREVIEW_MAX = Decimal(10) ** 15


def _preview_quantity(raw: str | None, default: Decimal) -> Decimal:
    if raw is None or raw.strip() == "":
        return default
    value = Decimal(raw.replace(",", ""))  # InvalidOperation for what is not a number
    if not (0 <= value < PREVIEW_MAX):
        raise InvalidOperation
    return value


def preview_inputs(charges: list[Charge]) -> list[dict]:
    """The preview form's inputs: one quantity per usage metric, one per fixed fee priced per
    unit (seats), keyed by metric code or charge key; flat fees and percentage charges need none."""
    inputs, seen = [], set()
    for charge in charges:
        model = charge.pricing_model
        if model.on_amounts or model.fixed_fee:
            continue
        if charge.is_usage:
            name, label = f"m_{charge.metric.code}", charge.metric.name
            unit, default = charge.unit_name or charge.metric.code, Decimal(1000)
        else:
            name, label = f"c_{charge.key}", charge.name
            unit, default = charge.unit_name or "units", charge.default_quantity or Decimal(1)
        if name not in seen:
            seen.add(name)
            inputs.append({"name": name, "label": label, "unit": unit, "default": default})
    return inputs


def _input_name(charge: Charge) -> str:
    return f"m_{charge.metric.code}" if charge.is_usage else f"c_{charge.key}"


def price_preview(
    charges: list[Charge],
    quantities: dict[str, Decimal],
    events: int,
    event_amount: Decimal,
) -> list[dict]:
    """What each charge costs for one period: usage and per-unit fees at the quantity entered
    for their metric (or charge), flat fees once, percentage charges on `events` events of
    `event_amount`. Each row has its rating steps, formatted as money."""
    rows = []
    for charge in charges:
        model, currency = charge.pricing_model, charge.currency
        quantity = None
        try:
            if model.on_amounts:
                rated = rating.rate_events(charge.pricing(), [event_amount] * events)
                quantity = (
                    f"{format_quantity(events)} events of {format_price(event_amount, currency)}"
                )
            else:
                units = Decimal(1) if model.fixed_fee else quantities[_input_name(charge)]
                rated = rating.rate(charge.pricing(), units)
                if not model.fixed_fee:
                    quantity = format_quantity(units, charge.unit_name)
        except (DomainError, InvalidOperation, TypeError, KeyError) as exc:
            rows.append({"charge": charge, "error": str(exc)})
            continue
        amount = round_money(rated.amount, currency)
        rows.append(
            {
                "charge": charge,
                "price": pricing_summary(charge.pricing(), currency),
                "quantity": quantity,
                "amount": amount,
                "amount_shown": format_money(amount, currency),
                "steps": [
                    {
                        "description": step_description(step.description, currency),
                        "subtotal": format_price(step.subtotal, currency),
                    }
                    for step in rated.steps
                ],
            }
        )
    return rows


@admin.register(Plan)
class PlanAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = [
        "code",
        "name",
        "currency",
        "additional_currencies",
        "billing_interval_months",
        "active",
    ]
    list_filter = ["active", "billing_interval_months"]
    search_fields = ["code", "name"]
    inlines = [ChargeInline, PlanAlertDefaultInline, SspInline]
    fields = [
        "code",
        "name",
        "description",
        "currency",
        "additional_currencies",
        "billing_interval_months",
        "trial_days",
        "renewal_uplift_percent",
        "renewal_uplift_on",
        "active",
    ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        plan = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if plan is not None:
            extra_context |= self._preview_context(request, plan)
        return super().change_view(request, object_id, form_url, extra_context)

    def _preview_context(self, request, plan: Plan) -> dict:
        currencies = plan.currencies
        currency = request.GET.get("preview_currency") or plan.currency
        if currency not in currencies:
            currency = plan.currency
        charges = charges_in_force(plan=plan, currency=currency, on=clock.today())
        inputs = preview_inputs(charges)
        error = None
        try:
            quantities = {
                i["name"]: _preview_quantity(request.GET.get(i["name"]), i["default"])
                for i in inputs
            }
            events = _preview_quantity(request.GET.get("preview_events"), Decimal(100))
            event_amount = _preview_quantity(request.GET.get("preview_amount"), Decimal(100))
            if events > 10_000 or events % 1:
                raise InvalidOperation
        except InvalidOperation:
            error = (
                "Enter quantities from 0 to under 10^15, a whole number of events from 0 to "
                "10,000 and a non-negative amount."
            )
            quantities = {i["name"]: i["default"] for i in inputs}
            events, event_amount = Decimal(100), Decimal(100)
        for i in inputs:
            i["value"] = plain(quantities[i["name"]])
        rows = price_preview(charges, quantities, int(events), event_amount)
        total = sum((r["amount"] for r in rows if "amount" in r), Decimal(0))
        return {
            "preview": rows,
            "preview_error": error,
            "preview_inputs": inputs,
            "preview_currency": currency,
            "preview_currencies": currencies,
            "preview_on_amounts": any(c.pricing_model.on_amounts for c in charges),
            "preview_events": plain(events),
            "preview_amount": plain(event_amount),
            "preview_total": format_money(total, currency),
            "preview_charges": charges,
        }
