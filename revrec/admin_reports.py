"""Revenue › the revenue reports (finance only, like the trial balance): revenue by product and
customer, the revenue waterfall, unbilled receivables and remaining performance obligations,
each with its CSV. The figures are revrec.reports'; the pages are registered in config/urls.py
under admin/revrec/reports/, wrapped by admin.site.admin_view."""

import datetime as dt

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminSingleDateWidget

from core import clock
from core.periods import add_months, month_start
from customers.models import Customer
from revrec import reports
from revrec.admin_ledger import _csv_response, may_see_ledger
from revrec.models import AccountingPeriod


def month_choices(today: dt.date) -> list[tuple[str, str]]:
    """Months from the first accounting period (at most five years back, two at least) to a year
    ahead, latest first, as ("YYYY-MM", "November 2026")."""
    first = AccountingPeriod.objects.order_by("start").values_list("start", flat=True).first()
    earliest = add_months(month_start(today), -60)
    start = max(min(first or today, add_months(month_start(today), -24)), earliest)
    months = reports.months_between(start, add_months(month_start(today), 12))
    return [(f"{m:%Y-%m}", f"{m:%B %Y}") for m in reversed(months)]


def _month(value: str) -> dt.date:
    return dt.date.fromisoformat(f"{value}-01")


class RangeForm(forms.Form):
    start = forms.ChoiceField(label="From", widget=UnfoldAdminSelectWidget)
    end = forms.ChoiceField(label="To", widget=UnfoldAdminSelectWidget)

    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        choices = month_choices(today)
        self.fields["start"].choices = self.fields["end"].choices = choices

    def months(self) -> tuple[dt.date, dt.date]:
        start, end = _month(self.cleaned_data["start"]), _month(self.cleaned_data["end"])
        return (start, end) if start <= end else (end, start)


def _range_form(request, today: dt.date, form_class=RangeForm, **extra):
    """The form bound to the query, or to the last 12 months up to this one by default."""
    this = month_start(today)
    default = {"start": f"{add_months(this, -11):%Y-%m}", "end": f"{this:%Y-%m}"}
    data = request.GET if "start" in request.GET else default
    form = form_class(data, today=today, **extra)
    if not form.is_valid():  # a month out of the choices: the default range
        form = form_class(default, today=today, **extra)
        form.is_valid()
    return form


class RevenueForm(RangeForm):
    customer = forms.ModelChoiceField(
        Customer.objects.order_by("name"),
        required=False,
        empty_label="All customers",
        widget=UnfoldAdminSelectWidget,
    )
    product = forms.ChoiceField(required=False, widget=UnfoldAdminSelectWidget)

    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, today=today, **kwargs)
        self.fields["product"].choices = [("", "All products")] + [
            (name, name) for name in reports.product_choices()
        ]


def _context(request, title: str, **values) -> dict:
    return {
        **admin.site.each_context(request),
        "title": title,
        "content_title": title,
        **values,
    }


def _guard(request) -> None:
    if not may_see_ledger(request.user):
        raise PermissionDenied


def revenue_view(request):
    _guard(request)
    today = clock.today()
    form = _range_form(request, today, RevenueForm)
    first, last = form.months()
    customer = form.cleaned_data.get("customer")
    product = form.cleaned_data.get("product") or None
    tables = reports.revenue_by_month(
        first, last, customer_id=customer.pk if customer else None, product=product
    )
    if "download" in request.GET:
        return _csv_response(
            reports.revenue_csv_rows(tables), f"revenue-{first:%Y-%m}-{last:%Y-%m}.csv"
        )
    return TemplateResponse(
        request,
        "admin/revrec/report_revenue.html",
        _context(
            request,
            "Revenue by product and customer",
            form=form,
            tables=tables,
            first=first,
            last=last,
        ),
    )


def waterfall_view(request):
    _guard(request)
    form = _range_form(request, clock.today())
    first, last = form.months()
    tables = reports.waterfall(first, last)
    if "download" in request.GET:
        return _csv_response(
            reports.waterfall_csv_rows(tables), f"waterfall-{first:%Y-%m}-{last:%Y-%m}.csv"
        )
    return TemplateResponse(
        request,
        "admin/revrec/report_waterfall.html",
        _context(request, "Revenue waterfall", form=form, tables=tables, first=first, last=last),
    )


class AsOfForm(forms.Form):
    as_of = forms.DateField(
        label="As of",
        widget=UnfoldAdminSingleDateWidget,
        help_text="The balances at the end of this day (YYYY-MM-DD).",
    )


def unbilled_view(request):
    _guard(request)
    today = clock.today()
    form = AsOfForm(request.GET if "as_of" in request.GET else {"as_of": today})
    if not form.is_valid():
        form = AsOfForm({"as_of": today})
        form.is_valid()
    as_of = form.cleaned_data["as_of"]
    rows = reports.unbilled(as_of)
    if "download" in request.GET:
        return _csv_response(reports.unbilled_csv_rows(rows), f"unbilled-{as_of:%Y-%m-%d}.csv")
    totals = reports.totals_by_currency(rows, "account", "ahead", "total")
    return TemplateResponse(
        request,
        "admin/revrec/report_unbilled.html",
        _context(
            request,
            "Unbilled receivables",
            form=form,
            rows=rows,
            totals=totals,
            as_of=as_of,
        ),
    )


class MonthForm(forms.Form):
    month = forms.ChoiceField(label="As of the end of", widget=UnfoldAdminSelectWidget)

    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["month"].choices = month_choices(today)


def rpo_view(request):
    _guard(request)
    today = clock.today()
    default = {"month": f"{today:%Y-%m}"}
    form = MonthForm(request.GET if "month" in request.GET else default, today=today)
    if not form.is_valid():
        form = MonthForm(default, today=today)
        form.is_valid()
    month = _month(form.cleaned_data["month"])
    rows = reports.remaining_obligations(month)
    if "download" in request.GET:
        return _csv_response(reports.rpo_csv_rows(rows), f"rpo-{month:%Y-%m}.csv")
    totals = reports.totals_by_currency(rows, "next_12", "beyond", "total")
    return TemplateResponse(
        request,
        "admin/revrec/report_rpo.html",
        _context(
            request,
            "Remaining performance obligations",
            form=form,
            rows=rows,
            totals=totals,
            month=month,
            month_end=add_months(month, 1) - dt.timedelta(days=1),
            horizon=add_months(month, 12),
        ),
    )
