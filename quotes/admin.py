from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as FormValidationError
from django.db import models
from django.db.models import Prefetch
from django.urls import reverse
from django.utils.dateparse import parse_date
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.forms import PaginationInlineFormSet

from catalog.models import Charge, Plan
from catalog.pricing_display import pricing_summary
from catalog.selectors import charges_in_force
from core import clock
from core.admin import LINK_CLASSES
from core.errors import DomainError
from core.formatting import format_money, format_price, format_quantity
from core.forms import PlainDecimalField
from customers.models import Customer
from quotes import services
from quotes.admin_documents import QuoteDocumentsMixin
from quotes.models import Quote, QuoteLine
from quotes.totals import quote_totals


def charge_choices(charges: list[Charge]) -> list[tuple[int, str]]:
    """(pk, label) per charge, each label unique: "Seats · Standard · $25.00 per unit"."""
    labels = [f"{c.name} · {pricing_summary(c.pricing(), str(c.currency))}" for c in charges]
    counts = Counter(labels)
    return [
        (c.pk, label if counts[label] == 1 else f"{label} ({c.key})")
        for c, label in zip(charges, labels, strict=True)
    ]


class ChargeField(forms.ModelChoiceField):
    """A line's charge among choices read once per request, not once per row (the formset's
    forms share `charges` and the choices list: a 500-line quote reads its charges once)."""

    charges: dict[str, Charge] = {}
    currency: str | None = None

    def to_python(self, value):
        if value in self.empty_values:
            return None
        charge = self.charges.get(str(value))
        if charge is not None:
            return charge
        # A charge in another currency is refused by the line's validation, which says why;
        # any other charge is not one of the quote's plan's.
        other = Charge.objects.filter(pk=value).first() if str(value).isdigit() else None
        if other is not None and self.currency and str(other.currency) != self.currency:
            return other
        raise FormValidationError(
            self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value}
        )


class QuoteLineFormSet(PaginationInlineFormSet):
    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        # Every row's quote is this one (no query per row), also unsaved on the add page, where
        # the line's validation needs the quote's customer (its currency).
        form.instance.quote = self.instance
        return form


def _quote_terms(request) -> tuple[Plan, str, object] | None:
    """The plan, currency and start date whose charges a line may use: the saved quote's, else
    the submitted plan's and customer's (the add page), else None (no charge is offered)."""
    quote = getattr(request, "_quote", None)
    if quote is not None:
        return quote.plan, quote.currency, quote.start_date
    data = request.POST
    try:
        plan = Plan.objects.get(pk=data["plan"], active=True)
        customer = Customer.objects.get(pk=data["customer"])
        start = parse_date(data.get("start_date") or "") or clock.today()
    except (KeyError, ValueError, TypeError, ObjectDoesNotExist, FormValidationError):
        return None
    return plan, str(customer.currency), start


LINES_PER_PAGE = 50


class QuoteLineInline(TabularInline):
    model = QuoteLine
    formset = QuoteLineFormSet
    extra = 0
    hide_title = True  # the row header would repeat the line's charge and description
    # A long quote's lines by pages (the page's number travels with a save): rendering 500
    # editable rows takes about 2 s whatever the queries (bench/quote.py, docs/benchmarks.md)
    per_page = LINES_PER_PAGE
    fields = ["position", "charge", "description", "quantity", "unit_price"]
    formfield_overrides = {models.DecimalField: {"form_class": PlainDecimalField}}

    def get_fields(self, request, obj=None):
        if self._editable(obj):
            return self.fields
        return ["position", "charge", "description", "quantity_shown", "unit_price_shown"]

    def get_readonly_fields(self, request, obj=None):
        return [] if self._editable(obj) else self.get_fields(request, obj)

    @admin.display(description="Quantity")
    def quantity_shown(self, line):
        return format_quantity(line.quantity)

    @admin.display(description="Unit price")
    def unit_price_shown(self, line):
        if line.unit_price is None:
            return "catalog terms"
        return format_price(line.unit_price, line.quote.currency)

    def get_queryset(self, request):
        # The read-only rows show the charge as "plan: name"
        return super().get_queryset(request).select_related("charge__plan")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "charge":
            # A plain select, without the add/change/view-charge links that the admin would
            # reverse on every row (a sales rep picks a charge; finance edits the catalog)
            return self.formfield_for_foreignkey(db_field, request, **kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name != "charge":
            return super().formfield_for_foreignkey(db_field, request, **kwargs)
        # Only the quote's plan's charges in force on its start date, in the customer's currency,
        # read once for the whole formset
        terms = _quote_terms(request)
        in_force = charges_in_force(plan=terms[0], currency=terms[1], on=terms[2]) if terms else []
        kwargs |= {
            "queryset": Charge.objects.filter(pk__in=[c.pk for c in in_force]),
            "form_class": ChargeField,
        }
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        field.charges = {str(c.pk): c for c in in_force}
        field.currency = terms[1] if terms else None
        field.choices = [("", field.empty_label), *charge_choices(in_force)]
        return field

    def _editable(self, obj):
        return obj is None or obj.status == Quote.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


def _run(modeladmin, request, queryset, service, verb):
    for quote in queryset:
        try:
            service(quote=quote)
        except DomainError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
        else:
            modeladmin.message_user(request, f"Quote {quote.number} {verb}.", messages.SUCCESS)


@admin.action(description="Mark selected quotes as sent", permissions=["change"])
def mark_sent(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.quote_mark_sent, "marked as sent")


@admin.action(
    description="Accept selected quotes (creates the subscription)", permissions=["change"]
)
def accept(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.quote_accept, "accepted: subscription created")


@admin.action(description="Mark selected quotes as expired", permissions=["change"])
def expire(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.quote_expire, "marked as expired")


@admin.action(description="Decline selected quotes", permissions=["change"])
def decline(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.quote_decline, "declined")


@admin.register(Quote)
class QuoteAdmin(QuoteDocumentsMixin, SimpleHistoryAdmin, ModelAdmin):
    # Fits its card at 1366 px; the start date is on the quote page.
    list_display = ["number", "customer", "plan", "status", "valid_until", "total"]
    list_filter = [("status", ChoicesDropdownFilter), ("plan", RelatedDropdownFilter)]
    list_select_related = ["customer", "plan"]
    search_fields = ["customer__name", "customer__external_id", "title"]
    autocomplete_fields = ["customer"]
    inlines = [QuoteLineInline]
    actions = [mark_sent, accept, decline, expire]
    readonly_fields = ["status", "subscription_link", "accepted_at", "total"]
    fieldsets = [
        (None, {"fields": ["customer", "plan", "title", "status"]}),
        (
            "Terms",
            {"fields": ["start_date", "term_months", "valid_until", "subscription_external_id"]},
        ),
        ("Result", {"fields": ["total", "subscription_link", "accepted_at"]}),
    ]

    def get_queryset(self, request):
        # The list's totals in two queries for the page; to an attribute of its own, so that
        # `quote.lines` stays a fresh read for the services.
        lines = QuoteLine.objects.select_related("charge").prefetch_related("charge__tiers")
        listed = Prefetch("lines", queryset=lines, to_attr="listed_lines")
        return super().get_queryset(request).prefetch_related(listed)

    @admin.display(description="Total contract value")
    def total(self, obj):
        if not obj.pk:
            return "—"
        lines = getattr(obj, "listed_lines", None)
        return format_money(quote_totals(obj, lines).tcv, obj.currency)

    @admin.display(description="Subscription")
    def subscription_link(self, obj):
        if not obj.subscription_id:
            return "—"
        return format_html(
            '<a href="{}" class="{}">{}</a>',
            reverse("admin:subscriptions_subscription_change", args=[obj.subscription_id]),
            LINK_CLASSES,
            obj.subscription.external_id,
        )

    def has_delete_permission(self, request, obj=None):
        # Drafts only: a sent quote is declined or expires, an accepted one made a subscription.
        if obj is not None and obj.status != Quote.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj and obj.status != Quote.Status.DRAFT:
            return [f.name for f in Quote._meta.fields] + self.readonly_fields
        return self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        request._quote = obj  # the line inline offers only this quote's plan's charges
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "plan":
            kwargs["queryset"] = db_field.related_model.objects.filter(active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not obj.owner_id:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change and "plan" in form.changed_data:
            # Another plan: its charges replace the old plan's lines, which cannot apply.
            services.quote_populate_lines(quote=form.instance, replace=True)
            return
        super().save_related(request, form, formsets, change)
        services.quote_populate_lines(quote=form.instance)

    def response_change(self, request, obj):
        if "_accept" in request.POST:
            accept(self, request, Quote.objects.filter(pk=obj.pk))
            return self.response_post_save_change(request, obj)
        return super().response_change(request, obj)
