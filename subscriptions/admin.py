from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnly
from core.errors import DomainError
from subscriptions import services
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionItem


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    extra = 0


class SubscriptionItemInline(ReadOnlyInline):
    model = SubscriptionItem
    fields = ["name", "metric", "group_value", "billing_timing", "prorated", "quantity", "pricing"]


class BillingPeriodInline(ReadOnlyInline):
    model = BillingPeriod
    fields = ["sequence", "start_date", "end_date", "billed_from", "advance_amount"]


@admin.register(Subscription)
class SubscriptionAdmin(SimpleHistoryAdmin):
    """Subscriptions are created by accepting a quote (or the service); here they are read."""

    list_display = ["external_id", "customer", "plan", "start_date", "term_months", "status"]
    list_filter = ["status", "plan"]
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
        "created_at",
    ]
    readonly_fields += ["status"]  # changes go through services (cancel/amend: later issues)
    inlines = [SubscriptionItemInline, BillingPeriodInline]

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


@admin.register(PrepaidCredit)
class PrepaidCreditAdmin(SimpleHistoryAdmin):
    """Finance grants prepaid balances; invoicing draws them down (see each line's credit uses)."""

    list_display = ["subscription", "metric", "granted", "remaining", "granted_on", "note"]
    search_fields = ["subscription__external_id", "subscription__customer__name", "note"]
    autocomplete_fields = ["subscription"]
    form = PrepaidCreditForm

    def get_readonly_fields(self, request, obj=None):
        return ["subscription", "metric", "granted", "remaining", "granted_on"] if obj else []

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
