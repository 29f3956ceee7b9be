"""Finance's shadow billing page in the admin: a date, optionally the expected totals, and the
invoices the billing run would make (saved nowhere), with a CSV download. Registered in
config/urls.py under admin/invoicing/shadow-billing/, wrapped by admin.site.admin_view."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from unfold.widgets import UnfoldAdminFileFieldWidget, UnfoldAdminSingleDateWidget

from core import clock
from core.errors import ValidationError
from invoicing.models import Invoice
from invoicing.shadow import (
    read_expected,
    shadow_billing,
    shadow_csv,
    shadow_differences,
)

MAX_EXPECTED_BYTES = 5 * 1024 * 1024


def may_shadow_bill(user) -> bool:
    """Finance (or a superuser) who can view invoices."""
    if user.is_superuser:
        return True
    return user.has_perm("invoicing.view_invoice") and user.groups.filter(name="Finance").exists()


class ShadowBillingForm(forms.Form):
    # unfold's widgets: the page reads like the rest of the admin (inputs, not bare browser fields)
    as_of = forms.DateField(
        label="Bill as of",
        widget=UnfoldAdminSingleDateWidget,
        help_text="The date of the billing run to simulate (YYYY-MM-DD).",
    )
    expected = forms.FileField(
        required=False,
        label="Expected totals (CSV)",
        widget=UnfoldAdminFileFieldWidget,
        help_text="Optional: columns customer, subscription, billing_date, total.",
    )

    def clean_expected(self):
        upload = self.cleaned_data.get("expected")
        if not upload:
            return None
        if upload.size > MAX_EXPECTED_BYTES:
            raise forms.ValidationError("The file is over 5 MB.")
        try:
            return read_expected(upload.read().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("Save the CSV as UTF-8.") from exc
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from exc


def shadow_billing_view(request):
    if not may_shadow_bill(request.user):
        raise PermissionDenied
    form = ShadowBillingForm(request.POST or None, request.FILES or None)
    if not request.POST:
        form = ShadowBillingForm(initial={"as_of": clock.today()})
    run = differences = None
    if request.method == "POST" and form.is_valid():
        run = shadow_billing(as_of=form.cleaned_data["as_of"])
        if "download" in request.POST:
            response = HttpResponse(shadow_csv(run), content_type="text/csv; charset=utf-8")
            name = f"shadow-billing-{run.as_of.isoformat()}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        if form.cleaned_data["expected"] is not None:
            differences = shadow_differences(run, form.cleaned_data["expected"])
    context = {
        **admin.site.each_context(request),
        "title": "Shadow billing",
        "content_title": "Shadow billing",  # unfold's header: Invoicing › Invoices › Shadow billing
        "model_admin": admin.site._registry[Invoice],
        "form": form,
        "run": run,
        "differences": differences,
    }
    return TemplateResponse(request, "admin/invoicing/shadow_billing.html", context)
