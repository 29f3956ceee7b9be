"""Finance's AR aging page in the admin: a date (today by default), each customer's open amounts
by age with links to their invoices, and the same rows as CSV. Registered in config/urls.py under
admin/receivables/aging/, wrapped by admin.site.admin_view."""

import csv
import io
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.widgets import UnfoldAdminSingleDateWidget

from core import clock
from core.formatting import format_money
from receivables.admin_views import may_see_receivables
from receivables.aging import aging_csv_rows, ar_aging
from receivables.models import Payment


class AgingForm(forms.Form):
    as_of = forms.DateField(
        label="As of",
        widget=UnfoldAdminSingleDateWidget,
        help_text="The open amounts as they were at the end of this day (YYYY-MM-DD).",
    )


def invoices_link(customer_id: int, currency: str) -> str:
    """The customer's invoices still open today in the admin invoice list."""
    url = reverse("admin:invoicing_invoice_changelist")
    return f"{url}?{urlencode({'customer__id__exact': customer_id, 'currency': currency})}"


def aging_view(request):
    if not may_see_receivables(request.user):
        raise PermissionDenied
    form = AgingForm(request.GET if "as_of" in request.GET else {"as_of": clock.today()})
    report = None
    if form.is_valid():
        report = ar_aging(as_of=form.cleaned_data["as_of"])
        if "download" in request.GET:
            out = io.StringIO()
            csv.writer(out).writerows(aging_csv_rows(report))
            response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
            name = f"ar-aging-{report.as_of.isoformat()}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
    rows = []
    if report is not None:
        for row in [*report.rows, *report.totals]:
            rows.append(
                {
                    "customer": row.customer,
                    "link": invoices_link(row.customer_id, row.currency)
                    if row.customer_id
                    else None,
                    "currency": row.currency,
                    "buckets": [format_money(a, row.currency) for a in row.buckets],
                    "open": format_money(row.open, row.currency),
                    "unapplied": format_money(row.unapplied_credit, row.currency),
                    "balance": format_money(row.balance, row.currency),
                    "total": row.customer_id is None,
                }
            )
    context = {
        **admin.site.each_context(request),
        "title": "AR aging",
        "content_title": "AR aging",
        "model_admin": admin.site._registry[Payment],
        "form": form,
        "report": report,
        "rows": rows,
    }
    return TemplateResponse(request, "admin/receivables/aging.html", context)
