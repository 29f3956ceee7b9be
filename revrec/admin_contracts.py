"""Finance's revenue contracts (read-only): each contract with its performance obligations and
their monthly recognition lines, and the "Recognize now" page that runs the recognition of a
month (revrec.recognition.recognize) on demand."""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action
from unfold.widgets import UnfoldAdminSingleDateWidget

from core import clock
from core.admin import ReadOnly
from core.errors import DomainError
from core.formatting import format_money
from core.periods import add_months, month_start
from revrec import recognition
from revrec.models import PerformanceObligation, RevenueContract


def may_recognize(user) -> bool:
    """Finance (or a superuser) who can view revenue contracts."""
    if user.is_superuser:
        return True
    return (
        user.has_perm("revrec.view_revenuecontract") and user.groups.filter(name="Finance").exists()
    )


class PerformanceObligationInline(ReadOnly, TabularInline):
    model = PerformanceObligation
    extra = 0
    fields = readonly_fields = [
        "description",
        "kind",
        "service",
        "ssp_shown",
        "consideration_shown",
        "allocated_shown",
        "monthly_lines",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("contract").prefetch_related("lines")

    @admin.display(description="Service")
    def service(self, obligation):
        last = obligation.service_end - dt.timedelta(days=1)
        return f"{obligation.service_start:%b %-d, %Y} – {last:%b %-d, %Y}"

    @admin.display(description="SSP")
    def ssp_shown(self, obligation):
        return format_money(obligation.ssp, obligation.contract.currency)

    @admin.display(description="Fixed fees")
    def consideration_shown(self, obligation):
        return format_money(obligation.fixed_consideration, obligation.contract.currency)

    @admin.display(description="Allocated")
    def allocated_shown(self, obligation):
        return format_money(obligation.allocated_amount, obligation.contract.currency)

    @admin.display(description="Monthly lines (✓ posted)")
    def monthly_lines(self, obligation):
        currency = obligation.contract.currency
        lines = sorted(obligation.lines.all(), key=lambda line: line.month)
        if not lines:
            return "—"
        return format_html_join(
            mark_safe("<br>"),  # noqa: S308 (a constant)
            "{}: {}{}",
            (
                (
                    f"{line.month:%b %Y}",
                    format_money(line.amount, currency),
                    " ✓" if line.entry_id else "",
                )
                for line in lines
            ),
        )


class RecognizeForm(forms.Form):
    month = forms.DateField(
        label="Month (any day of it)",
        widget=UnfoldAdminSingleDateWidget,
        help_text="Recognizes every line due by the end of this month that is not posted yet.",
    )


@admin.register(RevenueContract)
class RevenueContractAdmin(ReadOnly, ModelAdmin):
    list_display = ["subscription", "customer", "quote", "start", "end_shown", "currency"]
    list_select_related = ["subscription__customer", "customer", "quote"]
    search_fields = ["subscription__external_id", "customer__name"]
    fields = readonly_fields = [
        "subscription",
        "quote",
        "customer",
        "currency",
        "start",
        "end_shown",
    ]
    inlines = [PerformanceObligationInline]
    actions_list = ["recognize_now"]

    @admin.display(description="End (included)", ordering="end")
    def end_shown(self, contract):
        return contract.end - dt.timedelta(days=1)

    @action(description="Recognize now", icon="play_arrow", permissions=["recognize"])
    def recognize_now(self, request):
        return redirect(reverse("admin:revrec_revenuecontract_recognize"))

    def has_recognize_permission(self, request, object_id=None):
        return may_recognize(request.user)

    def get_urls(self):
        urls = [
            path(
                "recognize/",
                self.admin_site.admin_view(self.recognize_view),
                name="revrec_revenuecontract_recognize",
            )
        ]
        return urls + super().get_urls()

    def recognize_view(self, request):
        if not may_recognize(request.user):
            raise PermissionDenied
        last_month = add_months(month_start(clock.today()), -1)
        form = RecognizeForm(request.POST or None, initial={"month": last_month})
        if request.method == "POST" and form.is_valid():
            month = month_start(form.cleaned_data["month"])
            try:
                with transaction.atomic(durable=True):
                    made = recognition.contracts_sync()
                    posted = recognition.recognize(month)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Recognition through {month:%B %Y}: {posted} line{'s' if posted != 1 else ''} "
                    f"posted to the journal ({made} new contract{'s' if made != 1 else ''}).",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:revrec_revenuecontract_changelist"))
        title = "Recognize revenue"
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "content_title": title,
            "model_admin": self,
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/revrec/recognize.html", context)
