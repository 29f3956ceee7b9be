"""Customer portal: a member of a customer account sees only that account's documents.

Everything is looked up within the member's customer (`_customer`): another customer's invoice,
subscription or alert answers 404, the same as one that does not exist.
"""

import csv
import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog.models import BillableMetric
from core import clock
from core.errors import DomainError
from core.money import plain
from invoicing.balance import invoice_credit_applied
from invoicing.documents import invoice_pdf_stored
from invoicing.models import CreditNote, Invoice
from invoicing.pdf import credit_note_pdf
from invoicing.selectors import upcoming_invoice
from metering import alerts as usage_alerts
from metering.models import UsageAlert
from metering.selectors import current_period, daily_usage, previous_period, usage_for_period
from quotes.documents import quote_document, quote_filename, quote_pdf
from quotes.models import Quote
from quotes.services import quote_accept
from receivables.selectors import (
    customer_balances,
    invoice_amount_due,
    invoice_state,
)
from receivables.statements import customer_statement, last_full_month, statement_pdf
from subscriptions.models import Subscription, SubscriptionItem


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


def _subscriptions(customer):
    return Subscription.objects.filter(customer=customer).select_related("plan")


@login_required
def home(request):
    """The landing page: what is owed, what comes next, and what fired."""
    if request.user.is_staff and not hasattr(request.user, "portal_membership"):
        return redirect("admin:index")
    customer = _customer(request)
    rows = []
    for subscription in _subscriptions(customer).order_by("external_id"):
        estimate = None
        if subscription.status == Subscription.Status.ACTIVE:
            estimate = upcoming_invoice(subscription=subscription, live=True)
        rows.append({"subscription": subscription, "estimate": estimate})
    upcoming = sorted(
        (row["estimate"] for row in rows if row["estimate"] is not None),
        key=lambda u: (u.billing_date, u.subscription.external_id),
    )
    firings = list(usage_alerts.customer_firings(customer=customer)[:5])
    for firing in firings:
        firing.value_text = usage_alerts.alert_format(firing.alert, firing.value)
        firing.threshold_text = usage_alerts.alert_format(firing.alert, firing.threshold)
    return render(
        request,
        "portal/home.html",
        {
            "customer": customer,
            "balances": customer_balances(customer=customer),
            "upcoming": upcoming,
            "next_invoice": upcoming[0] if upcoming else None,
            "subscriptions": rows,
            "firings": firings,
        },
    )


@login_required
def invoice_list(request):
    customer = _customer(request)
    invoices = list(_visible_invoices(customer).order_by("-issue_date", "-id"))
    today = clock.today()
    for invoice in invoices:
        invoice.amount_due = invoice_amount_due(invoice)
        invoice.state = invoice_state(invoice, today)
    outstanding = sum((i.amount_due for i in invoices), start=0)
    return render(
        request,
        "portal/invoice_list.html",
        {"customer": customer, "invoices": invoices, "outstanding": outstanding},
    )


def settled_rows(invoice: Invoice) -> list[tuple[str, Decimal]]:
    """(label, negative amount) of what stands between the total and the amount due: the credit
    balance applied, credit notes (less what went to the credit balance), payments, write-offs;
    the ones that are not zero. Total + these = amount due (Invoice.open_amount)."""
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID):
        return []
    credit = invoice_credit_applied(invoice)
    rows = [
        ("Credit balance applied", credit),
        ("Credit notes", invoice.credited_amount - invoice.credit_to_balance),
        ("Payments received", invoice.paid_amount - credit),
        ("Written off", invoice.written_off_amount),
    ]
    return [(label, -amount) for label, amount in rows if amount]


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
            "state": invoice_state(invoice),
            "settled": settled_rows(invoice),
            "credit_notes": invoice.credit_notes.order_by("issue_date", "id"),
        },
    )


@login_required
def invoice_download(request, number: str):
    customer = _customer(request)
    invoice = get_object_or_404(_visible_invoices(customer), number=number)
    response = HttpResponse(invoice_pdf_stored(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response


@login_required
def credit_note_download(request, number: str):
    customer = _customer(request)
    note = get_object_or_404(
        CreditNote.objects.select_related("invoice"), customer=customer, number=number
    )
    response = HttpResponse(credit_note_pdf(note), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{note.number}.pdf"'
    return response


# --- statement ---------------------------------------------------------------------------------


class StatementRangeForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if {"start", "end"} <= data.keys() and data["end"] < data["start"]:
            raise forms.ValidationError("The end date is before the start date: swap them.")
        return data


def _statement(request):
    """The logged-in customer's statement for ?start=&end= (the last full month by default)."""
    customer = _customer(request)
    if "start" in request.GET or "end" in request.GET:
        form = StatementRangeForm(request.GET)
    else:
        start, end = last_full_month(clock.today())
        form = StatementRangeForm({"start": start, "end": end})
    if not form.is_valid():
        return customer, form, None
    data = form.cleaned_data
    return (
        customer,
        form,
        customer_statement(customer=customer, start=data["start"], end=data["end"]),
    )


@login_required
def statement(request):
    customer, form, found = _statement(request)
    return render(
        request,
        "portal/statement.html",
        {"customer": customer, "form": form, "statement": found},
        status=200 if found else 400,
    )


@login_required
def statement_download(request):
    _, _, found = _statement(request)
    if found is None:
        raise Http404("Pick a valid date range for the statement.")
    response = HttpResponse(statement_pdf(found), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    return response


# --- usage ---------------------------------------------------------------------------------------


def _usage_series(subscription):
    """(this period, the previous period, their daily usage) — the chart's and the CSV's days."""
    period = current_period(subscription=subscription)
    previous = previous_period(subscription=subscription)
    now = daily_usage(subscription=subscription, period=period) if period else []
    before = daily_usage(subscription=subscription, period=previous) if previous else []
    return period, previous, now, before


@login_required
def subscription_usage(request, external_id: str):
    customer = _customer(request)
    subscription = get_object_or_404(_subscriptions(customer), external_id=external_id)
    period, previous, now, before = _usage_series(subscription)
    usage = usage_for_period(subscription=subscription, period=period, live=True) if period else []
    earlier = {series.metric.pk: series.days for series in before}
    days = [period.start + dt.timedelta(days=n) for n in range(period.days)] if period else []
    charts = [
        {
            # Day n of this period beside day n of the previous one. Numbers travel as text
            # (exact); the chart script reads them with Number().
            "id": f"usage-chart-{series.metric.pk}",
            "data_id": f"usage-chart-{series.metric.pk}-data",
            "metric": series.metric.name,
            "labels": [f"{day:%b} {day.day}" for day in days],
            "current": [plain(q) for _, q in series.days],
            "previous": [plain(q) for _, q in earlier.get(series.metric.pk, [])][: len(days)],
        }
        for series in now
    ]
    return render(
        request,
        "portal/usage.html",
        {
            "customer": customer,
            "subscription": subscription,
            "period": period,
            "last_day": period.end - dt.timedelta(days=1) if period else None,
            "previous": previous,
            "previous_last_day": previous.end - dt.timedelta(days=1) if previous else None,
            "usage": usage,
            "charts": charts,
            "estimate": upcoming_invoice(subscription=subscription, live=True)
            if subscription.status == Subscription.Status.ACTIVE
            else None,
        },
    )


@login_required
def subscription_usage_csv(request, external_id: str):
    """Daily usage, the previous period then this one so far: date, metric code, quantity."""
    customer = _customer(request)
    subscription = get_object_or_404(_subscriptions(customer), external_id=external_id)
    _, _, now, before = _usage_series(subscription)
    rows = sorted(
        (day, series.metric.code, quantity)
        for series in [*before, *now]
        for day, quantity in series.days
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{subscription.external_id}-daily-usage.csv"'
    )
    writer = csv.writer(response, lineterminator="\n")
    writer.writerow(["date", "metric", "quantity"])
    for day, code, quantity in rows:
        writer.writerow([day.isoformat(), code, plain(quantity)])
    return response


# --- usage alerts -------------------------------------------------------------------------------

BILL = "bill"  # the "what to watch" choice for the estimated bill


class AlertForm(forms.Form):
    """Parses the add-an-alert form; the service checks the rules (threshold > 0, a metric …)."""

    subscription = forms.ModelChoiceField(
        queryset=Subscription.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": "Choose one of your active subscriptions."},
    )
    watch = forms.ChoiceField(
        label="What to watch",
        error_messages={"invalid_choice": "Choose a metric or the estimated bill."},
    )
    threshold = forms.DecimalField(
        error_messages={
            "required": "Enter a threshold.",
            "invalid": "Enter the threshold as a number, e.g. 1000 or 250.50.",
        },
    )
    name = forms.CharField(required=False, max_length=200, label="Name (optional)")

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        subscriptions = Subscription.objects.filter(
            customer=customer, status=Subscription.Status.ACTIVE
        ).order_by("external_id")
        self.fields["subscription"].queryset = subscriptions
        self.fields["subscription"].label_from_instance = lambda s: s.external_id
        metrics = BillableMetric.objects.filter(
            pk__in=SubscriptionItem.objects.filter(
                subscription__in=subscriptions, metric__isnull=False
            ).values("metric_id")
        ).order_by("name", "code")
        self.fields["watch"].choices = [(BILL, "Estimated bill")] + [
            (str(m.pk), m.name) for m in metrics
        ]


def _alerts_page(request, customer, form, status=200):
    alerts = list(usage_alerts.customer_alerts(customer=customer))
    for alert in alerts:
        alert.threshold_text = usage_alerts.alert_format(alert, alert.threshold)
    firings = list(usage_alerts.customer_firings(customer=customer)[:100])
    for firing in firings:
        firing.value_text = usage_alerts.alert_format(firing.alert, firing.value)
        firing.threshold_text = usage_alerts.alert_format(firing.alert, firing.threshold)
        firing.last_day = firing.period_end - dt.timedelta(days=1)
    return render(
        request,
        "portal/alerts.html",
        {"customer": customer, "alerts": alerts, "firings": firings, "form": form},
        status=status,
    )


@login_required
def alert_list(request):
    customer = _customer(request)
    if request.method != "POST":
        return _alerts_page(request, customer, AlertForm(customer=customer))
    form = AlertForm(request.POST, customer=customer)
    if form.is_valid():
        data = form.cleaned_data
        metric = None
        if data["watch"] != BILL:
            metric = BillableMetric.objects.get(pk=data["watch"])
        try:
            alert = usage_alerts.usage_alert_create(
                subscription=data["subscription"],
                metric=metric,
                threshold=data["threshold"],
                name=data["name"],
            )
        except DomainError as exc:
            field = (exc.details or {}).get("field")
            field = {"metric": "watch"}.get(field, field)  # the service's name → the form's
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Alert “{alert}” added.")
            return redirect("portal:alerts")
    return _alerts_page(request, customer, form, status=422)


@require_POST
@login_required
def alert_delete(request, pk: int):
    customer = _customer(request)
    alert = get_object_or_404(UsageAlert, pk=pk, subscription__customer=customer)
    try:
        usage_alerts.usage_alert_delete(alert=alert)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Alert “{alert}” deleted.")
    return redirect("portal:alerts")


# --- quotes -------------------------------------------------------------------------------------


def _visible_quotes(customer):
    """The quotes the customer was sent (and the one they accepted): never a draft, a quote in
    review or an approved one the rep has not sent yet."""
    S = Quote.Status
    sent_once = Q(status__in=[S.EXPIRED, S.DECLINED, S.SUPERSEDED], sent_at__isnull=False)
    return (
        Quote.objects.filter(customer=customer)
        .filter(Q(status__in=[S.SENT, S.ACCEPTED]) | sent_once)
        .select_related("customer", "plan", "owner", "subscription")
    )


@login_required
def quote_list(request):
    customer = _customer(request)
    quotes = list(_visible_quotes(customer).order_by("-sent_at", "-id"))
    today = clock.today()
    for quote in quotes:
        quote.open = quote.status == Quote.Status.SENT and quote.valid_until >= today
    return render(request, "portal/quote_list.html", {"customer": customer, "quotes": quotes})


class AcceptQuoteForm(forms.Form):
    name = forms.CharField(
        label="Full name",
        max_length=200,
        error_messages={"required": "Enter your full name."},
    )
    title = forms.CharField(
        label="Title",
        max_length=200,
        error_messages={"required": "Enter your title (e.g. CFO, Head of Procurement)."},
    )
    accept = forms.BooleanField(
        error_messages={"required": "Tick the box to accept the quote on behalf of your company."},
    )

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["accept"].label = f"I accept this quote on behalf of {customer.name}"


def _acceptance_problem(quote: Quote) -> str | None:
    """Why the customer cannot accept the quote, said to the customer (None: they can)."""
    owner = quote.owner.get_full_name() or quote.owner.email if quote.owner else ""
    contact = f"contact {owner}" if owner else "contact your account manager"
    if quote.status == Quote.Status.ACCEPTED:
        when = quote.accepted_at
        by = f" by {quote.accepted_by_name}" if quote.accepted_by_name else ""
        on = f" on {when:%b} {when.day}, {when.year}" if when else ""
        return f"This quote was already accepted{by}{on}: nothing more to do."
    if quote.status == Quote.Status.SUPERSEDED:
        return f"This quote was replaced by a new version: {contact} for the current one."
    if quote.status == Quote.Status.DECLINED:
        return f"This quote was declined: {contact} if you want a new one."
    if quote.status == Quote.Status.EXPIRED or quote.valid_until < clock.today():
        until = quote.valid_until
        return (
            f"This quote expired on {until:%b} {until.day}, {until.year} and can no longer be "
            f"accepted: {contact} for a new one."
        )
    if quote.status != Quote.Status.SENT:
        return f"This quote cannot be accepted at the moment: {contact}."
    return None


@login_required
def quote_detail(request, pk: int):
    customer = _customer(request)
    quote = get_object_or_404(_visible_quotes(customer), pk=pk)
    problem = _acceptance_problem(quote)
    form = AcceptQuoteForm(customer=customer)
    status = 200
    if request.method == "POST":
        form = AcceptQuoteForm(request.POST, customer=customer)
        if problem:
            messages.error(request, problem)
            status = 409
        elif form.is_valid():
            try:
                quote = quote_accept(
                    quote=quote,
                    by=request.user,
                    name=form.cleaned_data["name"],
                    title=form.cleaned_data["title"],
                )
            except DomainError as exc:
                messages.error(request, _customer_message(quote, exc))
                status = 409
            else:
                start = quote.start_date
                starts = (
                    "The new terms take effect on"
                    if quote.kind == Quote.Kind.AMENDMENT
                    else "Your subscription starts on"
                )
                messages.success(
                    request,
                    f"Thank you: quote {quote.number} is accepted. {starts} "
                    f"{start:%b} {start.day}, {start.year}.",
                )
                return redirect("portal:quote", pk=quote.pk)
        else:
            status = 422
    quote.refresh_from_db()
    return render(
        request,
        "portal/quote_detail.html",
        {
            **quote_document(quote),
            "customer": customer,
            "form": form,
            "problem": _acceptance_problem(quote),
        },
        status=status,
    )


def _customer_message(quote: Quote, exc: DomainError) -> str:
    """The service's refusal, said to the customer: what happened and whom to ask."""
    quote.refresh_from_db()
    problem = _acceptance_problem(quote)
    if problem:
        return problem
    return f"The quote could not be accepted: {exc.message} Nothing was changed."


@login_required
def quote_download(request, pk: int):
    customer = _customer(request)
    quote = get_object_or_404(_visible_quotes(customer), pk=pk)
    response = HttpResponse(quote_pdf(quote), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{quote_filename(quote)}"'
    return response
