"""A quote's lines in the admin: the quote page's line inline (one row per line, its list and net
price per period beside the typed terms) and the line's own page ("Tiers & ramp": negotiated tiers
and ramp phases, checked as a whole when saved)."""

from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as FormValidationError
from django.db import models
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.dateparse import parse_date
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import PaginationInlineFormSet

from catalog import rating
from catalog.models import Charge, Plan
from catalog.pricing_display import pricing_summary
from catalog.selectors import charges_in_force
from core import clock
from core.admin import LINK_CLASSES, shown
from core.errors import DomainError
from core.formatting import format_money, format_price
from core.forms import PlainDecimalField
from customers.models import Customer
from quotes import services, validation
from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier
from quotes.totals import tiers_as_pricing

LINES_PER_PAGE = 25  # a page of editable rows renders in about 15 ms a row (bench/quote.py)


def charge_choices(charges: list[Charge]) -> list[tuple[int, str]]:
    """(pk, label) per charge, each label unique: "Seats · Standard · $25.00 per unit"."""
    labels = [f"{c.name} · {pricing_summary(c.pricing(), str(c.currency))}" for c in charges]
    counts = Counter(labels)
    return [
        (c.pk, label if counts[label] == 1 else f"{label} ({c.key})")
        for c, label in zip(charges, labels, strict=True)
    ]


def list_price_hint(charge: Charge) -> str:
    """The unit price field's placeholder: the catalog's unit price, or why there is none."""
    pricing = charge.pricing()
    value = rating.pricing_value(pricing, "unit_price", None)
    if value is not None and charge.pricing_model.unit_price:
        return f"list {format_price(value, str(charge.currency))}"
    return "tiers: see Tiers & ramp" if charge.pricing_model.tiered else "catalog terms"


class ChargeField(forms.ModelChoiceField):
    """A line's charge among choices read once per request, not once per row (the formset's
    forms share `charges` and the choices list: a 500-line quote reads its charges once)."""

    charges: dict[str, Charge] = {}
    hints: dict[str, str] = {}
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
        charge = form.fields.get("charge")
        price = form.fields.get("unit_price")
        if charge is not None and price is not None:
            hint = charge.hints.get(str(form.instance.charge_id), "")
            if form.instance.kind in QuoteLine.FREE_FORM:
                hint = "the fee's price" if form.instance.kind == "one_time" else "credit"
            price.widget.attrs["placeholder"] = hint
        return form

    def save_new(self, form, commit=True):
        # A new line goes after the others (lines are ordered by position).
        if not form.instance.position:
            last = self.instance.lines.aggregate(last=models.Max("position"))["last"]
            form.instance.position = (last or 0) + 1 + len(self.new_objects)
        return super().save_new(form, commit)


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


LINE_FIELDS = [
    "kind",
    "charge",
    "description",
    "quantity",
    "unit_price",
    "discount_percent",
    "discount_amount",
    "estimated_quantity",
    "minimum_amount",
]
# The list price is the unit price's placeholder ("list $25.00") and the totals' per-line table
FIGURES = ["net_price", "tiers_and_ramp"]
COLUMN_LABELS = {
    "quantity": "Qty",
    "discount_percent": "Disc. %",
    "discount_amount": "Disc. amount",
    "estimated_quantity": "Est. qty / month",
    "minimum_amount": "Min. / month",
}


READ_ONLY = {
    name: f"{name}_shown"
    for name in (
        "quantity",
        "unit_price",
        "discount_percent",
        "discount_amount",
        "estimated_quantity",
        "minimum_amount",
    )
}


class QuoteLineInline(TabularInline):
    model = QuoteLine
    formset = QuoteLineFormSet
    extra = 0
    hide_title = True  # the row header would repeat the line's charge and description
    # A long quote's lines by pages (the page's number travels with a save): each editable row
    # (nine inputs and its figures) costs about 15 ms to render whatever the queries, so 25 rows
    # keep a 500-line quote's page under a second (bench/quote.py, docs/benchmarks.md)
    per_page = LINES_PER_PAGE
    fields = LINE_FIELDS + FIGURES
    formfield_overrides = {models.DecimalField: {"form_class": PlainDecimalField}}
    # Set per request by QuoteAdmin (the quote's totals, computed once for the page)
    figures: dict = {}
    extras: dict = {}
    currency = "USD"

    def get_fields(self, request, obj=None):
        if self._editable(obj):
            return self.fields
        return [READ_ONLY.get(name, name) for name in self.fields]

    def get_readonly_fields(self, request, obj=None):
        if self._editable(obj):
            return FIGURES
        return self.get_fields(request, obj)

    # A quote no longer editable shows its lines' numbers as people read them
    quantity_shown = shown("quantity", "Qty")
    discount_percent_shown = shown("discount_percent", "Disc. %")
    discount_amount_shown = shown(
        "discount_amount", "Disc. amount", currency=lambda line: line.quote.currency
    )
    estimated_quantity_shown = shown("estimated_quantity", "Est. qty / month")
    minimum_amount_shown = shown(
        "minimum_amount", "Min. / month", currency=lambda line: line.quote.currency
    )

    @admin.display(description="Unit price")
    def unit_price_shown(self, line):
        if line.unit_price is None:
            return "catalog"
        return format_price(line.unit_price, line.quote.currency)

    def get_queryset(self, request):
        # The read-only rows show the charge as "plan: name"
        return super().get_queryset(request).select_related("charge__plan")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "charge":
            # A plain select, without the add/change/view-charge links that the admin would
            # reverse on every row (a sales rep picks a charge; finance edits the catalog)
            return self.formfield_for_foreignkey(db_field, request, **kwargs)
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in COLUMN_LABELS:
            field.label = COLUMN_LABELS[db_field.name]  # short headers: the row fits 1366 px
        return field

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
            "required": False,
        }
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        field.charges = {str(c.pk): c for c in in_force}
        field.hints = {str(c.pk): list_price_hint(c) for c in in_force}
        field.currency = terms[1] if terms else None
        field.choices = [("", field.empty_label), *charge_choices(in_force)]
        return field

    def _figures(self, line):
        return self.figures.get(line.pk) if line.pk else None

    # The admin reads each read-only cell several times: each row's cells are made once
    def _cells(self, line) -> tuple[str, str]:
        cells = getattr(line, "_cells", None)
        if cells is None:
            cells = line._cells = self._make_cells(line)
        return cells

    def _make_cells(self, line) -> tuple[str, str]:
        figures = self._figures(line)
        if not figures:
            return "—", "save first" if not line.pk else "—"
        net = format_money(figures.net_first, self.currency)
        if figures.net_last != figures.net_first:
            net = f"{net} → {format_money(figures.net_last, self.currency)}"
        extras = self.extras.get(line.pk)
        counts = []
        if extras and extras.tiers:
            counts.append(f"{len(extras.tiers)} tiers")
        if extras and extras.phases:
            counts.append(f"{len(extras.phases)} phases")
        link = format_html(
            '<a href="{}" class="{}">{}</a>',
            reverse("admin:quotes_quoteline_change", args=[line.pk]),
            LINK_CLASSES,
            ", ".join(counts) or "Tiers & ramp",
        )
        return net, link

    @admin.display(description="Net / period")
    def net_price(self, line):
        return self._cells(line)[0]

    @admin.display(description="Tiers & ramp")
    def tiers_and_ramp(self, line):
        return self._cells(line)[1]

    def _editable(self, obj):
        return obj is None or obj.editable

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


# --- the line's own page: negotiated tiers and ramp phases ---------------------------------------


def _kept(formset) -> list:
    """The formset's instances that are kept (valid, not deleted, not empty)."""
    kept = []
    for form in formset.forms:
        if not hasattr(form, "cleaned_data") or not form.cleaned_data:
            continue
        if formset.can_delete and formset._should_delete_form(form):
            continue
        kept.append(form.instance)
    return kept


class TierFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        tiers = sorted(_kept(self), key=lambda t: (t.up_to is None, t.up_to or 0))
        problems = validation.tier_problems(self.instance, tiers_as_pricing(tiers))
        if problems:
            raise FormValidationError(problems)
        for position, tier in enumerate(tiers):
            tier.position = position


class PhaseFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        quote = self.instance.quote
        problems = validation.phase_problems(
            self.instance, _kept(self), term_months=quote.term_months, interval=quote.interval
        )
        if problems:
            raise FormValidationError(problems)


class _LineChild(TabularInline):
    extra = 0
    formfield_overrides = {models.DecimalField: {"form_class": PlainDecimalField}}

    def _editable(self, obj):
        return obj is not None and obj.quote.editable

    def get_fields(self, request, obj=None):
        if self._editable(obj):
            return self.fields
        return [f"{name}_shown" if name in self.decimals else name for name in self.fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if self._editable(obj) else self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class QuoteLineTierInline(_LineChild):
    model = QuoteLineTier
    formset = TierFormSet
    fields = ["up_to", "unit_price", "flat_fee"]
    decimals = fields
    up_to_shown = shown("up_to", "Up to")
    unit_price_shown = shown("unit_price", "Unit price", currency=lambda t: t.line.quote.currency)
    flat_fee_shown = shown("flat_fee", "Flat fee", currency=lambda t: t.line.quote.currency)
    verbose_name = "negotiated tier"
    verbose_name_plural = "Negotiated tiers (usage on a graduated or volume charge)"


class QuoteLinePhaseInline(_LineChild):
    model = QuoteLinePhase
    formset = PhaseFormSet
    fields = ["start_month", "end_month", "quantity", "unit_price", "discount_percent"]
    decimals = ["quantity", "unit_price", "discount_percent"]
    quantity_shown = shown("quantity", "Quantity")
    unit_price_shown = shown("unit_price", "Unit price", currency=lambda p: p.line.quote.currency)
    discount_percent_shown = shown("discount_percent", "Discount percent")
    verbose_name = "ramp phase"
    verbose_name_plural = "Ramp phases (a recurring fee by months of the term)"


class LineForm(forms.ModelForm):
    """The line's own fields are edited on the quote page; here they are shown only, and the
    line's rules (QuoteLine.clean) are checked where they are typed."""

    class Meta:
        model = QuoteLine
        fields = []

    def _post_clean(self):
        pass


@admin.register(QuoteLine)
class QuoteLineAdmin(ModelAdmin):
    """A line's tiers and ramp (reached from its quote's page; not in the sidebar)."""

    form = LineForm
    inlines = [QuoteLineTierInline, QuoteLinePhaseInline]
    list_display = ["__str__", "quote", "kind"]
    list_select_related = ["quote__customer"]
    readonly_fields = [
        "back_to_quote",
        "kind",
        "charge_terms",
        "description",
        "quantity_shown",
        "unit_price_shown",
        "discount_percent_shown",
        "discount_amount_shown",
        "estimated_quantity_shown",
        "minimum_amount_shown",
        "term",
    ]
    fieldsets = [
        (None, {"fields": ["back_to_quote", "kind", "charge_terms", "description", "term"]}),
        (
            "Terms of the line (edited on the quote page)",
            {
                "fields": [
                    "quantity_shown",
                    "unit_price_shown",
                    "discount_percent_shown",
                    "discount_amount_shown",
                    "estimated_quantity_shown",
                    "minimum_amount_shown",
                ]
            },
        ),
    ]

    def has_module_permission(self, request):
        return False  # reached from a quote's lines, not from the sidebar or the app list

    def has_add_permission(self, request):
        return False  # lines are added on the quote page

    def has_delete_permission(self, request, obj=None):
        return False  # and removed there

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.quote.editable:
            return False
        return super().has_change_permission(request, obj)

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("quote__customer", "quote__plan", "charge")
        )

    @admin.display(description="Quote")
    def back_to_quote(self, line):
        return format_html(
            '<a href="{}" class="{}">← back to the quote {} ({})</a>',
            reverse("admin:quotes_quote_change", args=[line.quote_id]),
            LINK_CLASSES,
            line.quote.number,
            line.quote.get_status_display(),
        )

    quantity_shown = shown("quantity", "Quantity")
    discount_percent_shown = shown("discount_percent", "Discount percent")
    discount_amount_shown = shown(
        "discount_amount", "Discount amount", currency=lambda line: line.quote.currency
    )
    estimated_quantity_shown = shown("estimated_quantity", "Estimated quantity per month")
    minimum_amount_shown = shown(
        "minimum_amount", "Minimum per month", currency=lambda line: line.quote.currency
    )

    @admin.display(description="Unit price")
    def unit_price_shown(self, line):
        if line.unit_price is None:
            return "the catalog's"
        return format_price(line.unit_price, line.quote.currency)

    @admin.display(description="Catalog terms")
    def charge_terms(self, line):
        if line.charge_id is None:
            return "typed on the quote (no catalog charge)"
        return f"{line.charge.name} · {pricing_summary(line.charge.pricing(), line.quote.currency)}"

    @admin.display(description="Term")
    def term(self, line):
        quote = line.quote
        return (
            f"{quote.term_months} months from {quote.start_date:%b %-d, %Y}, billed every "
            f"{quote.interval} month{'s' if quote.interval > 1 else ''}: phases cover months "
            f"1–{quote.term_months}, each starting with a billing period."
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        line = form.instance
        tiers = sorted(line.tiers.all(), key=lambda t: (t.up_to is None, t.up_to or 0))
        for position, tier in enumerate(tiers):
            tier.position = position
        QuoteLineTier.objects.bulk_update(tiers, ["position"])
        first = line.phases.order_by("start_month").first()
        if first is not None and first.quantity != line.quantity:
            # A ramped line's quantity is its first phase's (what month 1 bills)
            QuoteLine.objects.filter(pk=line.pk).update(quantity=first.quantity)
        if line.quote.status == Quote.Status.APPROVED and any(f.has_changed() for f in formsets):
            quote_was_edited(request, line.quote)

    def response_change(self, request, obj):
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            self.message_user(request, f"The line “{obj}” was saved.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:quotes_quote_change", args=[obj.quote_id]))
        return super().response_change(request, obj)


def quote_was_edited(request, quote: Quote) -> None:
    """An approved quote changed: through the approval rules again, telling the rep the result."""
    try:
        quote = services.quote_edited(quote=quote, by=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return
    if quote.status == Quote.Status.IN_REVIEW:
        messages.warning(
            request,
            f"Quote {quote.number} changed after its approval and went back to review: "
            + " ".join(quote.approval_reasons),
        )


__all__ = [
    "LINES_PER_PAGE",
    "ChargeField",
    "QuoteLineAdmin",
    "QuoteLineInline",
    "charge_choices",
]
