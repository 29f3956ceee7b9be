"""Customer portal: a member of a customer account sees only that account's documents."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from core import clock
from invoicing.models import Invoice
from invoicing.pdf import invoice_pdf
from receivables.selectors import invoice_amount_due


def _customer(request):
    membership = getattr(request.user, "portal_membership", None)
    if membership is None:
        raise Http404("This login is not linked to a customer account.")
    return membership.customer


def _visible_invoices(customer):
    return Invoice.objects.filter(customer=customer).exclude(status=Invoice.Status.DRAFT)


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def get_success_url(self):
        if not hasattr(self.request.user, "portal_membership") and self.request.user.is_staff:
            return reverse("admin:index")  # back-office users have no customer account
        return super().get_success_url()


@login_required
def invoice_list(request):
    if request.user.is_staff and not hasattr(request.user, "portal_membership"):
        return redirect("admin:index")
    customer = _customer(request)
    invoices = list(_visible_invoices(customer).order_by("-issue_date", "-id"))
    today = clock.today()
    for invoice in invoices:
        invoice.amount_due = invoice_amount_due(invoice)
        invoice.overdue = invoice.status == Invoice.Status.FINALIZED and invoice.due_date < today
    outstanding = sum((i.amount_due for i in invoices), start=0)
    return render(
        request,
        "portal/invoice_list.html",
        {"customer": customer, "invoices": invoices, "outstanding": outstanding},
    )


@login_required
def invoice_detail(request, number: str):
    customer = _customer(request)
    invoice = get_object_or_404(_visible_invoices(customer), number=number)
    return render(
        request,
        "portal/invoice_detail.html",
        {
            "customer": customer,
            "invoice": invoice,
            "lines": invoice.lines.all(),
            "amount_due": invoice_amount_due(invoice),
        },
    )


@login_required
def invoice_download(request, number: str):
    customer = _customer(request)
    invoice = get_object_or_404(_visible_invoices(customer), number=number)
    response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response
