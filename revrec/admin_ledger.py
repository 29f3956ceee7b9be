"""Revenue › Accounts, Accounting periods, Journal entries and the trial balance (finance only).

The chart of accounts is edited here. A period's page is its close checklist with the Close
button, the unapplied-cash confirmation and, for the latest closed period, Reopen with a reason;
every change goes through revrec.close. The journal is read-only (entries come from documents);
its changelist exports a period as CSV, and the trial balance page shows each account's balance
as of a period's end, per currency, with its CSV; the deferred revenue page rolls that account
forward period by period (opening, billed, credited/voided, recognized, closing), with its CSV.
"""

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextareaWidget

from core.admin import ReadOnly
from core.errors import DomainError
from core.formatting import format_money
from revrec import close
from revrec.models import Account, AccountingPeriod, JournalEntry, JournalLine
from revrec.selectors import (
    deferred_rollforward,
    document_of,
    journal_csv_rows,
    rollforward_csv_rows,
    trial_balance,
    trial_balance_csv_rows,
)

LINK = "text-primary-600 dark:text-primary-500"


def may_see_ledger(user) -> bool:
    """Finance (or a superuser) who can view the journal."""
    if user.is_superuser:
        return True
    return user.has_perm("revrec.view_journalentry") and user.groups.filter(name="Finance").exists()


def may_close(user) -> bool:
    """Finance who may close, reopen and confirm reviews (change on periods)."""
    return may_see_ledger(user) and user.has_perm("revrec.change_accountingperiod")


def _csv_response(rows, name: str) -> HttpResponse:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class FinanceOnly:
    """Every page of these admins: Finance's (a superuser's), never another role's."""

    def has_module_permission(self, request):
        return may_see_ledger(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return may_see_ledger(request.user) and super().has_view_permission(request, obj)


# --- the chart of accounts ---------------------------------------------------------------------


class AccountForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ["code", "name", "type", "role", "active"]

    def clean_role(self):
        role = self.cleaned_data.get("role") or None
        if role:
            other = Account.objects.filter(role=role).exclude(pk=self.instance.pk).first()
            if other is not None:
                raise forms.ValidationError(
                    f"{other} has the role “{Account.Role(role).label}” already: one account per "
                    "role. Take the role off it first (its page), then set it here."
                )
        return role


@admin.register(Account)
class AccountAdmin(FinanceOnly, ModelAdmin):
    form = AccountForm
    list_display = ["code", "name", "type", "role", "active"]
    list_filter = ["type", "active"]
    search_fields = ["code", "name"]

    def has_delete_permission(self, request, obj=None):
        return False  # accounts with lines are protected; an unused one is made inactive


# --- accounting periods and their close --------------------------------------------------------


class ReopenForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Why the period reopens: kept on the period and in its history.",
    )


@admin.register(AccountingPeriod)
class AccountingPeriodAdmin(FinanceOnly, ModelAdmin):
    list_display = ["__str__", "status_shown", "closed_at", "closed_by", "reopen_reason"]
    list_filter = ["status"]
    ordering = ["-start"]

    @admin.display(description="Status", ordering="status")
    def status_shown(self, period):
        return period.get_status_display()

    def has_add_permission(self, request):
        return False  # periods are made as postings need them

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        period = self.get_object(request, object_id)
        if period is None:
            raise Http404(f"No accounting period with id {object_id}.")
        if not self.has_view_permission(request, period):
            raise PermissionDenied
        reopen = ReopenForm(request.POST if "reopen" in request.POST else None)
        if request.method == "POST":
            if not may_close(request.user):
                raise PermissionDenied
            try:
                with transaction.atomic(durable=True):
                    if "close" in request.POST:
                        close.period_close(period=period, by=request.user)
                        messages.success(request, f"{period} is closed: nothing posts into it.")
                    elif "cash_reviewed" in request.POST:
                        close.period_cash_review(period=period, by=request.user)
                        messages.success(request, "The unapplied cash review is recorded.")
                    elif "reopen" in request.POST and reopen.is_valid():
                        close.period_reopen(
                            period=period, by=request.user, reason=reopen.cleaned_data["reason"]
                        )
                        messages.success(request, f"{period} is open again.")
            except DomainError as exc:
                if "reopen" in request.POST:
                    reopen.add_error(None, exc.message)
                else:
                    messages.error(request, exc.message)
            else:
                if "reopen" not in request.POST or reopen.is_valid():
                    return redirect(request.path)
        period.refresh_from_db()
        latest = close.latest_closed()
        open_checks = period.status == AccountingPeriod.Status.OPEN
        context = {
            **self.admin_site.each_context(request),
            "title": f"Accounting period {period}",
            "content_title": f"Accounting period {period}",
            "opts": self.model._meta,
            "model_admin": self,
            "period": period,
            "checks": close.close_checklist(period) if open_checks else [],
            "may_close": may_close(request.user),
            "may_reopen": latest is not None and latest.pk == period.pk,
            "reopen": reopen,
            "history": period.history.order_by("-history_date")[:20],
            "entries_link": f"{reverse('admin:revrec_journalentry_changelist')}"
            f"?period__id__exact={period.pk}",
            "export_link": reverse("admin:revrec_journalentry_export", args=[period.pk]),
            "trial_balance_link": f"{reverse('admin:revrec_journalentry_trial_balance')}"
            f"?period={period.pk}",
            "entry_count": period.entries.count(),
        }
        return TemplateResponse(request, "admin/revrec/period.html", context)


# --- the journal -------------------------------------------------------------------------------


class JournalLineInline(ReadOnly, TabularInline):
    model = JournalLine
    extra = 0
    fields = readonly_fields = ["account", "debit_shown", "credit_shown", "customer", "memo"]

    @admin.display(description="Debit")
    def debit_shown(self, line):
        return format_money(line.debit, line.entry.currency) if line.debit else ""

    @admin.display(description="Credit")
    def credit_shown(self, line):
        return format_money(line.credit, line.entry.currency) if line.credit else ""


# A source document's admin page, by the document named in the entry's source ("invoice:12");
# a source that is a bare id is named by the entry's kind (its first word). Documents not listed
# show the source as text.
SOURCE_PAGES = {
    "invoice": "admin:invoicing_invoice_change",
    "credit_note": "admin:invoicing_creditnote_change",
    "payment": "admin:receivables_payment_change",
    "entry": "admin:revrec_journalentry_change",
}


def source_link(entry: JournalEntry) -> str:
    text = document_of(entry)
    document, _, pk = text.rpartition(":")
    page = SOURCE_PAGES.get(document)
    if page is None or not pk.isdigit():
        return text
    try:
        url = reverse(page, args=[int(pk)])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}" class="{}">{}</a>', url, LINK, text)


@admin.register(JournalEntry)
class JournalEntryAdmin(FinanceOnly, ReadOnly, ModelAdmin):
    list_display = [
        "entry_date",
        "id",
        "kind",
        "memo",
        "total_shown",
        "document",
        "original_date",
        "period",
    ]
    list_filter = ["period", "kind", "lines__account", "currency"]
    search_fields = ["memo", "source", "kind"]
    list_select_related = ["period"]
    fields = readonly_fields = [
        "period",
        "entry_date",
        "original_date",
        "kind",
        "document",
        "memo",
        "currency",
        "reverses",
        "created_at",
    ]
    inlines = [JournalLineInline]
    change_list_template = "admin/revrec/journalentry/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("lines")

    @admin.display(description="Amount")
    def total_shown(self, entry):
        return format_money(sum(line.debit for line in entry.lines.all()), entry.currency)

    @admin.display(description="Document")
    def document(self, entry):
        return source_link(entry)

    def changelist_view(self, request, extra_context=None):
        periods = AccountingPeriod.objects.order_by("-start")
        extra = {"export_periods": periods[:24], **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def get_urls(self):
        urls = [
            path(
                "export/<int:period_id>/",
                self.admin_site.admin_view(self.export_view),
                name="revrec_journalentry_export",
            ),
            path(
                "trial-balance/",
                self.admin_site.admin_view(self.trial_balance_view),
                name="revrec_journalentry_trial_balance",
            ),
            path(
                "deferred-revenue/",
                self.admin_site.admin_view(self.rollforward_view),
                name="revrec_journalentry_deferred_rollforward",
            ),
        ]
        return urls + super().get_urls()

    def export_view(self, request, period_id: int):
        if not may_see_ledger(request.user):
            raise PermissionDenied
        period = get_object_or_404(AccountingPeriod, pk=period_id)
        return _csv_response(journal_csv_rows(period), f"journal-{period.start:%Y-%m}.csv")

    def trial_balance_view(self, request):
        if not may_see_ledger(request.user):
            raise PermissionDenied
        periods = list(AccountingPeriod.objects.order_by("-start"))
        chosen = request.GET.get("period")
        period = next((p for p in periods if str(p.pk) == chosen), None)
        if period is None and periods:
            period = next((p for p in periods if p.status == "closed"), periods[0])
        balances = trial_balance(period) if period else []
        if period and "download" in request.GET:
            return _csv_response(
                trial_balance_csv_rows(balances), f"trial-balance-{period.start:%Y-%m}.csv"
            )
        choice = forms.ChoiceField(
            choices=[(p.pk, f"{p} ({p.get_status_display().lower()})") for p in periods],
            widget=UnfoldAdminSelectWidget,
            label="As of the end of",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Trial balance",
            "content_title": "Trial balance",
            "opts": self.model._meta,
            "model_admin": self,
            "period": period,
            "period_field": choice.widget.render("period", period.pk if period else None),
            "balances": balances,
        }
        return TemplateResponse(request, "admin/revrec/trial_balance.html", context)

    def rollforward_view(self, request):
        if not may_see_ledger(request.user):
            raise PermissionDenied
        periods = list(AccountingPeriod.objects.order_by("-start"))
        by_pk = {str(p.pk): p for p in periods}
        end = by_pk.get(request.GET.get("end")) or (periods[0] if periods else None)
        start = by_pk.get(request.GET.get("start"))
        if start is None and end is not None:  # the twelve periods up to the end by default
            start = periods[min(periods.index(end) + 11, len(periods) - 1)]
        if start and end and start.start > end.start:
            start, end = end, start
        rows = deferred_rollforward(start, end) if end else []
        if end and "download" in request.GET:
            return _csv_response(
                rollforward_csv_rows(rows),
                f"deferred-revenue-{start.start:%Y-%m}-{end.start:%Y-%m}.csv",
            )
        choices = [(p.pk, f"{p} ({p.get_status_display().lower()})") for p in periods]
        field = forms.ChoiceField(choices=choices, widget=UnfoldAdminSelectWidget)
        context = {
            **self.admin_site.each_context(request),
            "title": "Deferred revenue",
            "content_title": "Deferred revenue roll-forward",
            "opts": self.model._meta,
            "model_admin": self,
            "start": start,
            "end": end,
            "start_field": field.widget.render("start", start.pk if start else None),
            "end_field": field.widget.render("end", end.pk if end else None),
            "rows": rows,
        }
        return TemplateResponse(request, "admin/revrec/deferred_rollforward.html", context)
