"""Finance's bank statement import in the admin (receivables.bank does the work):

- Receivables › Bank statements: the statements uploaded; "add" is the upload page, a
  statement's page lists its lines grouped proposed / unmatched / confirmed / ignored, with a
  Confirm button per proposed line and "Confirm all proposed".
- Receivables › Unmatched bank lines: the queue across statements (the status filter defaults to
  unmatched); each line's "Assign or ignore" page assigns a customer (and optionally an invoice) and
  confirms, or ignores the line with a reason.

Finance only (receivables.admin_views.may_see_receivables); uploading and confirming also need
the right to record payments. Registered from receivables/admin.py.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from core.admin import LINK_CLASSES, ReadOnly
from core.errors import DomainError
from core.formatting import format_money
from customers.models import Customer
from invoicing.models import Invoice
from receivables.admin_views import may_see_receivables
from receivables.bank import line_confirm, line_ignore, lines_confirm_proposed, statement_import
from receivables.models import BankLine, BankStatement

MAX_UPLOAD = 5 * 1024 * 1024  # a month of a busy account is well under 1 MB


def may_work_bank_lines(user) -> bool:
    """Upload statements and confirm lines: finance who may record payments."""
    return may_see_receivables(user) and user.has_perm("receivables.add_payment")


def _recorded(line: BankLine) -> str:
    where = f" for {line.invoice.number}" if line.invoice_id else " (oldest invoices first)"
    return f"Recorded {format_money(line.amount, line.currency)} from {line.customer}{where}."


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Statement (CSV)",
        help_text="Columns date, amount, reference, payer (optionally currency); dates "
        "YYYY-MM-DD or DD/MM/YYYY; amounts like 1,250.00.",
    )
    currency = forms.CharField(
        label="Account currency",
        initial="USD",
        max_length=3,
        widget=UnfoldAdminTextInputWidget,
        help_text="The bank account's currency (a currency column, when present, must match).",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD:
            raise forms.ValidationError("The file is over 5 MB: split the statement by month.")
        return upload

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()


@admin.register(BankStatement)
class BankStatementAdmin(ModelAdmin):
    list_display = ["file_name", "uploaded_at", "uploaded_by", "currency", "lines_shown"]
    list_select_related = ["uploaded_by"]
    search_fields = ["file_name"]

    def has_module_permission(self, request):
        return may_see_receivables(request.user)

    def has_view_permission(self, request, obj=None):
        return may_see_receivables(request.user)

    def has_add_permission(self, request):
        return may_work_bank_lines(request.user)

    def has_change_permission(self, request, obj=None):
        return False  # a statement is a record of a file; its lines are worked on its page

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Lines")
    def lines_shown(self, obj):
        return (
            f"{obj.new_count} new, {obj.duplicate_count} already recorded, "
            f"{obj.outgoing_count} outgoing"
        )

    def _context(self, request, title, **extra):
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "content_title": title,
            "opts": self.model._meta,
            "model_admin": self,
            **extra,
        }

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        problems = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                with transaction.atomic():
                    result = statement_import(
                        file_name=upload.name,
                        content=upload.read(),
                        currency=form.cleaned_data["currency"],
                        uploaded_by=request.user,
                    )
            except DomainError as exc:
                messages.error(request, exc.message)
                problems = exc.details or []
            else:
                level = messages.WARNING if result.already_imported else messages.SUCCESS
                messages.add_message(request, level, result.message)
                return redirect(
                    reverse("admin:receivables_bankstatement_change", args=[result.statement.pk])
                )
        context = self._context(request, "Upload a bank statement", form=form, problems=problems)
        return TemplateResponse(request, "admin/receivables/bank_upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        statement = get_object_or_404(BankStatement, pk=object_id)
        if request.method == "POST":
            if not may_work_bank_lines(request.user):
                raise PermissionDenied
            if "confirm_all" in request.POST:
                with transaction.atomic():
                    done, errors = lines_confirm_proposed(
                        lines=statement.lines.all(), by=request.user
                    )
                messages.success(request, f"{len(done)} line(s) confirmed.")
                for error in errors:
                    messages.error(request, error)
            elif "confirm" in request.POST:
                line = get_object_or_404(statement.lines, pk=request.POST["confirm"])
                if line.status == BankLine.Status.CONFIRMED:
                    messages.info(request, f"Line {line.row} was confirmed already.")
                    return redirect(request.path)
                try:
                    with transaction.atomic():
                        line = line_confirm(line=line, by=request.user)
                except DomainError as exc:
                    messages.error(request, exc.message)
                else:
                    messages.success(request, _recorded(line))
            return redirect(request.path)
        lines = list(
            statement.lines.select_related("customer", "invoice", "payment").order_by("row")
        )
        groups = [
            (label, status, [x for x in lines if x.status == status])
            for status, label in BankLine.Status.choices
        ]
        context = self._context(
            request,
            f"Bank statement: {statement.file_name}",
            statement=statement,
            groups=groups,
            may_confirm=may_work_bank_lines(request.user),
        )
        return TemplateResponse(request, "admin/receivables/bank_statement.html", context)


class QueueFilter(admin.SimpleListFilter):
    """The queue: unmatched lines unless another status is chosen."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*BankLine.Status.choices, ("all", "All")]

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            selected = self.value() == value or (self.value() is None and value == "unmatched")
            yield {
                "selected": selected,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self.value() or BankLine.Status.UNMATCHED
        return queryset if value == "all" else queryset.filter(status=value)


class DecideForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("confirm", "Confirm: record the payment"), ("ignore", "Ignore the line")],
        widget=UnfoldAdminSelectWidget,
    )
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.none(),
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text="Who paid.",
    )
    invoice = forms.ModelChoiceField(
        queryset=Invoice.objects.none(),
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text="Optional: without one, the customer's oldest open invoices are paid first.",
    )
    reason = forms.CharField(
        required=False,
        max_length=300,
        widget=UnfoldAdminTextInputWidget,
        help_text="Why the line is ignored (not a customer's payment: interest, a supplier…).",
    )

    def __init__(self, *args, line: BankLine, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(currency=line.currency)
        self.fields["invoice"].queryset = Invoice.objects.filter(
            status=Invoice.Status.FINALIZED, currency=line.currency
        ).select_related("customer")
        self.fields["invoice"].label_from_instance = lambda i: (
            f"{i.number} — {i.customer} — {format_money(i.open_amount, i.currency)} open"
        )

    def clean(self):
        data = super().clean()
        if data.get("action") == "confirm" and not (data.get("customer") or data.get("invoice")):
            raise forms.ValidationError("Choose the customer who paid (or their invoice).")
        if data.get("action") == "ignore" and not data.get("reason", "").strip():
            raise forms.ValidationError("Say why the line is ignored.")
        return data


@admin.register(BankLine)
class BankLineAdmin(ReadOnly, ModelAdmin):
    list_display = [
        "booked_on", "amount_shown", "payer", "reference", "customer", "note", "statement",
        "decide",
    ]  # fmt: skip
    list_filter = [QueueFilter]
    list_select_related = ["statement", "customer"]
    search_fields = ["payer", "reference"]
    readonly_fields = ["payment"]

    def has_module_permission(self, request):
        return may_see_receivables(request.user)

    def has_view_permission(self, request, obj=None):
        return may_see_receivables(request.user)

    def changelist_view(self, request, extra_context=None):
        status = request.GET.get("status", "unmatched")
        title = "Unmatched bank lines" if status == "unmatched" else "Bank lines"
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    @admin.display(description="Amount", ordering="amount")
    def amount_shown(self, obj):
        return format_money(obj.amount, obj.currency)

    @admin.display(description="")
    def decide(self, obj):
        if obj.status not in (BankLine.Status.UNMATCHED, BankLine.Status.PROPOSED):
            return ""
        url = reverse("admin:receivables_bankline_decide", args=[obj.pk])
        return format_html('<a class="{}" href="{}">Assign or ignore</a>', LINK_CLASSES, url)

    def get_urls(self):
        decide = path(
            "<int:line_id>/decide/",
            self.admin_site.admin_view(self.decide_view),
            name="receivables_bankline_decide",
        )
        return [decide, *super().get_urls()]

    def decide_view(self, request, line_id: int):
        if not may_work_bank_lines(request.user):
            raise PermissionDenied
        line = get_object_or_404(BankLine.objects.select_related("statement"), pk=line_id)
        initial = {"action": "confirm", "customer": line.customer_id, "invoice": line.invoice_id}
        form = DecideForm(request.POST or None, line=line, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    if data["action"] == "ignore":
                        line_ignore(line=line, reason=data["reason"], by=request.user)
                        note = "The line was ignored."
                    else:
                        line = line_confirm(
                            line=line,
                            customer=data["customer"],
                            invoice=data["invoice"],
                            by=request.user,
                        )
                        note = _recorded(line)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, note)
                return redirect(reverse("admin:receivables_bankline_changelist"))
        title = f"Bank line: {format_money(line.amount, line.currency)} from {line.payer or '?'}"
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "content_title": title,
            "opts": self.model._meta,
            "model_admin": self,
            "line": line,
            "form": form,
        }
        return TemplateResponse(request, "admin/receivables/bank_line_decide.html", context)
