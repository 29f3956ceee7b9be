from decimal import Decimal

from django import forms
from django.contrib import admin
from django.db import models
from django.utils.html import format_html_join
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter

from core.admin import ReadOnly
from core.formatting import format_money, format_quantity
from core.forms import PlainDecimalField
from core.money import plain
from metering.models import AlertFiring, Event, UsageAlert


@admin.register(Event)
class EventAdmin(ReadOnly, ModelAdmin):
    """Usage events are append-only: visible here, never edited."""

    list_display = ["transaction_id", "code", "subscription", "timestamp", "received_at"]
    list_filter = ["code"]
    search_fields = ["transaction_id", "subscription__external_id"]
    date_hierarchy = "timestamp"
    fields = readonly_fields = [
        "transaction_id",
        "code",
        "customer",
        "subscription",
        "timestamp",
        "properties_shown",
        "received_at",
    ]

    @admin.display(description="Properties")
    def properties_shown(self, event):
        """One property a line (model: tess-mini-2), not the stored JSON."""
        if not event.properties:
            return "—"
        return format_html_join(
            "",
            '<div><span class="text-base-400">{}:</span> {}</div>',
            sorted(_flat(event.properties)),
        )


def _flat(value, key: str = ""):
    """(dotted key, text) for each leaf of an event's properties; a list joined by commas."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from _flat(inner, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        yield key, ", ".join(_scalar(v) for v in value)
    else:
        yield key, _scalar(value)


def _scalar(value) -> str:
    """A property value as text: numbers without an exponent (1e-05 reads 0.00001)."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return plain(Decimal(str(value)))
    return str(value)


# --- usage alerts -------------------------------------------------------------------------------


def alert_figure(alert: UsageAlert, value) -> str:
    """Units of the alert's metric (12,000 api_calls), or money for the estimated bill."""
    if alert.metric_id:
        return format_quantity(value, alert.metric.code)
    return format_money(value, alert.subscription.currency)


class FiringFigures:
    """A firing's value and threshold as people read them."""

    @admin.display(description="value", ordering="value")
    def value_plain(self, obj):
        return alert_figure(obj.alert, obj.value)

    @admin.display(description="threshold", ordering="threshold")
    def threshold_plain(self, obj):
        return alert_figure(obj.alert, obj.threshold)


class AlertFiringInline(ReadOnly, FiringFigures, TabularInline):
    """When the alert fired, per billing period: a record, never edited."""

    model = AlertFiring
    extra = 0
    fields = ["period_start", "period_end", "value_plain", "threshold_plain", "fired_at"]
    readonly_fields = fields


class UsageAlertForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        subscription, metric = data.get("subscription"), data.get("metric")
        if (
            self.instance._state.adding
            and subscription
            and metric
            and not subscription.items.filter(metric=metric).exists()
        ):
            self.add_error(
                "metric",
                f"Subscription {subscription.external_id} is not metered on {metric.name}: "
                "choose one of its metrics, or leave it empty for the estimated bill.",
            )
        return data


@admin.register(UsageAlert)
class UsageAlertAdmin(SimpleHistoryAdmin, ModelAdmin):
    """Customers' own alerts and copies of plan defaults; the alert job fires them."""

    list_display = ["__str__", "subscription", "metric", "threshold_plain", "source", "active"]
    list_filter = [("source", ChoicesDropdownFilter), "active", "metric"]
    search_fields = ["name", "subscription__external_id", "subscription__customer__name"]
    list_select_related = ["subscription__customer", "metric"]
    form = UsageAlertForm
    fields = ["subscription", "metric", "threshold", "name", "active", "source", "plan_default"]
    readonly_fields = ["plan_default"]
    raw_id_fields = ["subscription"]
    inlines = [AlertFiringInline]
    formfield_overrides = {models.DecimalField: {"form_class": PlainDecimalField}}

    @admin.display(description="threshold", ordering="threshold")
    def threshold_plain(self, obj):
        return alert_figure(obj, obj.threshold)

    def get_readonly_fields(self, request, obj=None):
        # Once made, an alert keeps what it watches (its firings refer to it): change the
        # threshold or name, or pause it. Source "plan" on an alert added here means the
        # customer cannot delete it in the portal.
        if obj is not None:
            return [*self.readonly_fields, "subscription", "metric", "source"]
        return self.readonly_fields


@admin.register(AlertFiring)
class AlertFiringAdmin(ReadOnly, FiringFigures, ModelAdmin):
    """Every alert that fired (and was emailed to the billing contact): read-only."""

    list_display = [
        "alert",
        "subscription",
        "period_start",
        "value_plain",
        "threshold_plain",
        "fired_at",
    ]
    list_filter = ["period_start", "alert__source"]
    search_fields = ["alert__name", "alert__subscription__external_id"]
    list_select_related = ["alert__subscription__customer", "alert__metric"]
    date_hierarchy = "fired_at"
    readonly_fields = [f.name for f in AlertFiring._meta.fields]

    @admin.display(ordering="alert__subscription__external_id")
    def subscription(self, obj):
        return obj.alert.subscription
