"""Finance's statement page for one customer: a date range (the last full calendar month by
default), the statement, its PDF, and an email of it to the customer. Registered in
config/urls.py under admin/receivables/statement/<customer id>/ (name "receivables-statement"),
wrapped by admin.site.admin_view; the customer's admin page links to it by that name."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from unfold.widgets import UnfoldAdminSingleDateWidget

from core import clock
from core.errors import DomainError
from customers.models import Customer
from receivables.statements import (
    customer_statement,
    last_full_month,
    statement_email,
    statement_pdf,
)


def may_see_receivables(user) -> bool:
    """Finance (or a superuser) who can view payments."""
    if user.is_superuser:
        return True
    return user.has_perm("receivables.view_payment") and user.groups.filter(name="Finance").exists()


class StatementForm(forms.Form):
    start = forms.DateField(label="From", widget=UnfoldAdminSingleDateWidget)
    end = forms.DateField(label="To (included)", widget=UnfoldAdminSingleDateWidget)

    def clean(self):
        data = super().clean()
        if {"start", "end"} <= data.keys() and data["end"] < data["start"]:
            raise forms.ValidationError("The end date is before the start date: swap them.")
        return data


def statement_view(request, customer_id: int):
    if not may_see_receivables(request.user):
        raise PermissionDenied
    customer = get_object_or_404(Customer, pk=customer_id)
    source = request.POST if request.method == "POST" else request.GET
    if "start" in source or "end" in source:
        form = StatementForm(source)
    else:
        start, end = last_full_month(clock.today())
        form = StatementForm({"start": start, "end": end})
    statement = None
    if form.is_valid():
        statement = customer_statement(
            customer=customer, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
        )
        if request.method == "POST" and "email" in request.POST:
            try:
                to = statement_email(statement)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(
                    request, f"The statement was emailed to {to} with its PDF attached."
                )
            query = urlencode({"start": statement.start, "end": statement.end})
            return redirect(f"{reverse('receivables-statement', args=[customer.pk])}?{query}")
        if "pdf" in source:
            response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
            response["Content-Disposition"] = f'attachment; filename="{statement.filename}"'
            return response
    context = {
        **admin.site.each_context(request),
        "title": f"Statement: {customer}",
        "content_title": f"Statement: {customer}",
        "model_admin": admin.site._registry[Customer],
        "customer": customer,
        "form": form,
        "statement": statement,
    }
    return TemplateResponse(request, "admin/receivables/statement.html", context)
