from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.decorators import action
from unfold.enums import ActionVariant
from unfold.widgets import (
    UnfoldAdminDecimalFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminTextareaWidget,
)

from catalog.pricing_display import explanation_lines
from core.admin import LINK_CLASSES, ReadOnly
from core.errors import DomainError
from core.formatting import format_money, format_price, format_quantity
from invoicing import corrections, services
from invoicing.documents import invoice_pdf_stored
from invoicing.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, NumberSeries
from invoicing.pdf import credit_note_pdf


class InvoiceLineInline(ReadOnly, TabularInline):
    model = InvoiceLine
    extra = 0
    hide_title = True  # the row header would repeat the line's description
    fields = [
        "line",
        "service_period",
        "quantity_shown",
        "price",
        "amount_shown",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice")

    @admin.display(description="Description")
    def line(self, line):
        """The description and, under it, how it was rated — the steps the portal and PDF show."""
        steps = explanation_lines(line.explanation, line.invoice.currency)
        if line.kind == InvoiceLine.Kind.FEE and len(steps) <= 1:
            return line.description  # a fee's one step only repeats its quantity × price
        return format_html(
            '{}<ul class="mt-1 text-base-500 text-xs dark:text-base-400">{}</ul>',
            line.description,
            format_html_join("", "<li>{}</li>", ((step,) for step in steps)),
        )

    @admin.display(description="Service period")
    def service_period(self, line):
        """First and last day included, as the portal and the PDF show it."""
        return f"{line.period_start:%b %-d} – {line.last_day:%b %-d, %Y}"

    @admin.display(description="Quantity")
    def quantity_shown(self, line):
        return format_quantity(line.quantity)

    @admin.display(description="Unit price")
    def price(self, line):
        return (
            "—" if line.unit_price is None else format_price(line.unit_price, line.invoice.currency)
        )

    @admin.display(description="Amount")
    def amount_shown(self, line):
        return format_money(line.amount, line.invoice.currency)


class CreditNoteInline(ReadOnly, TabularInline):
    model = CreditNote
    extra = 0
    fields = ["note", "issue_date", "kind", "reason", "total_shown"]
    readonly_fields = fields
    verbose_name_plural = "Credit notes"

    @admin.display(description="Credit note")
    def note(self, obj):
        url = reverse("admin:invoicing_creditnote_pdf", args=[obj.pk])
        return format_html('{} · <a href="{}" class="{}">PDF</a>', obj.number, url, LINK_CLASSES)

    @admin.display(description="Total")
    def total_shown(self, obj):
        return format_money(obj.total, obj.currency)


class CreditNoteForm(forms.Form):
    """Finance's "Issue a credit note" page: in full, by line (an amount per line), or an amount
    (before tax) with a reason."""

    mode = forms.ChoiceField(
        choices=[("full", "In full"), ("lines", "By line"), ("amount", "An amount")],
        initial="full",
        widget=UnfoldAdminRadioSelectWidget,
        label="Credit",
    )
    amount = forms.DecimalField(
        required=False,
        min_value=0,
        widget=UnfoldAdminDecimalFieldWidget,
        label="Amount before tax",
        help_text="For “An amount”: tax is added at the invoice's rate.",
    )
    reason = forms.CharField(
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Required for “An amount”; shown on the credit note.",
    )

    def __init__(self, *args, invoice: Invoice, **kwargs):
        super().__init__(*args, **kwargs)
        self.line_fields = []
        for line in invoice.lines.all():
            if line.amount <= 0:
                continue  # a prepaid credit's negative line gives nothing back
            left = corrections.line_uncredited(line)
            name = f"line_{line.pk}"
            self.fields[name] = forms.DecimalField(
                required=False,
                min_value=0,
                widget=UnfoldAdminDecimalFieldWidget,
                label=line.description,
                help_text=f"Invoiced {format_money(line.amount, invoice.currency)}; "
                f"left to credit {format_money(left, invoice.currency)}.",
            )
            self.line_fields.append((name, line.pk))

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        reason = data.get("reason") or ""
        if data["mode"] == "full":
            return {"full": True, "reason": reason}
        if data["mode"] == "lines":
            return {
                "lines": {pk: data[name] for name, pk in self.line_fields if data.get(name)},
                "reason": reason,
            }
        return {"amount": data.get("amount"), "reason": reason}


class VoidForm(forms.Form):
    reason = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Why it is voided: kept on the invoice and printed on its PDF.",
    )


@admin.action(description="Finalize selected draft invoices", permissions=["change"])
def finalize(modeladmin, request, queryset):
    for invoice in queryset:
        try:
            services.invoice_finalize(invoice=invoice)
        except DomainError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)


class DocumentAmounts:
    """An invoice's or a credit note's amounts as money ($1,234.50), not the column's decimals."""

    @admin.display(description="Subtotal")
    def subtotal_shown(self, obj):
        return format_money(obj.subtotal, obj.currency)

    @admin.display(description="Tax")
    def tax_shown(self, obj):
        rate = obj.tax_rate.normalize() if obj.tax_rate else 0
        return (
            f"{format_money(obj.tax_amount, obj.currency)} ({rate:f}%)"
            if rate
            else format_money(obj.tax_amount, obj.currency)
        )

    @admin.display(description="Total", ordering="total")
    def total_shown(self, obj):
        return format_money(obj.total, obj.currency)


@admin.register(Invoice)
class InvoiceAdmin(DocumentAmounts, SimpleHistoryAdmin, ModelAdmin):
    list_display = ["__str__", "customer", "billing_date", "status", "total_shown", "due_date"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        "currency",
        ("billing_date", RangeDateFilter),
    ]
    list_filter_submit = True
    list_select_related = ["customer"]
    search_fields = ["number", "customer__name", "subscription__external_id"]
    date_hierarchy = "billing_date"
    inlines = [InvoiceLineInline, CreditNoteInline]
    actions = [finalize]
    actions_row = ["row_pdf"]
    actions_detail = ["detail_finalize", "detail_pdf", "detail_credit_note", "detail_void"]
    readonly_fields = [
        *(f.name for f in Invoice._meta.fields),
        "pdf_link",
        "subtotal_shown",
        "tax_shown",
        "total_shown",
        "credited_shown",
        "billed_to",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "number",
                    "status",
                    "customer",
                    "subscription",
                    "billing_date",
                    "issue_date",
                    "due_date",
                    "pdf_link",
                ]
            },
        ),
        ("Amounts", {"fields": ["subtotal_shown", "tax_shown", "total_shown", "credited_shown"]}),
        ("Void", {"fields": ["voided_at", "voided_by", "void_reason"]}),
        ("Billed to", {"fields": ["billed_to"]}),
        ("Record", {"fields": ["created_at", "finalized_at", "paid_at"]}),
    ]

    @admin.display(description="Credited")
    def credited_shown(self, obj):
        return format_money(obj.credited_amount, obj.currency)

    @action(
        description="Issue a credit note", icon="receipt_long", permissions=["issue_credit_note"]
    )
    def detail_credit_note(self, request, object_id):
        return redirect(reverse("admin:invoicing_invoice_credit_note", args=[object_id]))

    @action(description="Void", icon="block", permissions=["void_invoice"])
    def detail_void(self, request, object_id):
        return redirect(reverse("admin:invoicing_invoice_void", args=[object_id]))

    def has_issue_credit_note_permission(self, request, object_id=None):
        """Finance, on a finalized or paid invoice with something left to credit."""
        if not request.user.has_perm("invoicing.issue_credit_note"):
            return False
        return object_id is None or (
            Invoice.objects.filter(pk=object_id, status__in=corrections.CREDITABLE)
            .exclude(credited_amount__gte=models.F("total"))
            .exists()
        )

    def has_void_invoice_permission(self, request, object_id=None):
        """Finance, on an open (finalized) invoice."""
        if not request.user.has_perm("invoicing.void_invoice"):
            return False
        return object_id is None or (
            Invoice.objects.filter(pk=object_id, status=Invoice.Status.FINALIZED).exists()
        )

    def _correction_page(self, request, pk, *, permission):
        invoice = self.get_object(request, pk)
        if invoice is None:
            raise Http404(f"No invoice with id {pk}.")
        if not getattr(self, f"has_{permission}_permission")(request, pk):
            raise PermissionDenied
        return invoice

    def _render_correction(self, request, invoice, *, title, form, submit):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "content_title": title,
            "model_admin": self,
            "opts": self.model._meta,
            "original": invoice,
            "invoice": invoice,
            "form": form,
            "submit_label": submit,  # not "submit": the button component has its own
        }
        return TemplateResponse(request, "admin/invoicing/correction_form.html", context)

    def credit_note_view(self, request, pk):
        invoice = self._correction_page(request, pk, permission="issue_credit_note")
        form = CreditNoteForm(request.POST or None, invoice=invoice)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic(durable=True):
                    note = corrections.credit_note_issue(
                        invoice=invoice, issued_by=request.user, **form.service_arguments()
                    )
            except DomainError as exc:
                form.add_error(None, exc.message)  # nothing was written: the form says why
            else:
                self.message_user(
                    request,
                    f"Credit note {note.number} issued for "
                    f"{format_money(note.total, note.currency)}; it is emailed to the customer.",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:invoicing_invoice_change", args=[pk]))
        return self._render_correction(
            request,
            invoice,
            title=f"Issue a credit note on {invoice}",
            form=form,
            submit="Issue the credit note",
        )

    def void_view(self, request, pk):
        invoice = self._correction_page(request, pk, permission="void_invoice")
        form = VoidForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic(durable=True):
                    corrections.invoice_void(
                        invoice=invoice,
                        reason=form.cleaned_data["reason"],
                        voided_by=request.user,
                    )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Invoice {invoice} voided: its billing date is billed again by the next run.",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:invoicing_invoice_change", args=[pk]))
        return self._render_correction(
            request, invoice, title=f"Void invoice {invoice}", form=form, submit="Void the invoice"
        )

    @admin.display(description="Customer at finalization")
    def billed_to(self, obj):
        snapshot = obj.customer_snapshot or {}
        if not snapshot:
            return "—"
        return format_html_join(
            "",
            '<div><span class="text-base-400">{}:</span> {}</div>',
            (
                (str(k).replace("_", " ").capitalize(), v)
                for k, v in snapshot.items()
                if v not in (None, "")
            ),
        )

    @action(description="PDF", icon="picture_as_pdf", permissions=["view"])
    def row_pdf(self, request, object_id):
        return redirect(reverse("admin:invoicing_invoice_pdf", args=[object_id]))

    @action(description="Download PDF", icon="picture_as_pdf", permissions=["view"])
    def detail_pdf(self, request, object_id):
        return redirect(reverse("admin:invoicing_invoice_pdf", args=[object_id]))

    @action(
        description="Finalize",
        icon="task_alt",
        permissions=["finalize"],
        variant=ActionVariant.PRIMARY,
        dialog={
            "title": "Finalize this invoice?",
            "description": "It gets its number and can no longer change (corrections are "
            "credit notes).",
            "form_class": None,
            "form_submit_text": "Finalize",
        },
    )
    def detail_finalize(self, request, form, object_id):
        finalize(self, request, Invoice.objects.filter(pk=object_id, status=Invoice.Status.DRAFT))
        if not Invoice.objects.filter(pk=object_id, status=Invoice.Status.DRAFT).exists():
            self.message_user(request, "Invoice finalized.", messages.SUCCESS)
        return redirect(reverse("admin:invoicing_invoice_change", args=[object_id]))

    def has_finalize_permission(self, request, object_id=None):
        """The Finalize button: for who may change invoices, on a draft only (unfold asks with
        the object's id on the change page, before showing it and when it is run)."""
        if not self.has_change_permission(request):
            return False
        return object_id is None or (
            Invoice.objects.filter(pk=object_id, status=Invoice.Status.DRAFT).exists()
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Drafts only (a finalized invoice is corrected by a credit note), and only for whom
        # the role allows.
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="PDF")
    def pdf_link(self, obj):
        url = reverse("admin:invoicing_invoice_pdf", args=[obj.pk])
        return format_html('<a href="{}" class="{}">Download PDF</a>', url, LINK_CLASSES)

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoicing_invoice_pdf",
            ),
            path(
                "<int:pk>/credit-note/",
                self.admin_site.admin_view(self.credit_note_view),
                name="invoicing_invoice_credit_note",
            ),
            path(
                "<int:pk>/void/",
                self.admin_site.admin_view(self.void_view),
                name="invoicing_invoice_void",
            ),
        ]
        return urls + super().get_urls()

    def pdf_view(self, request, pk):
        invoice = self.get_object(request, pk)
        if invoice is None:
            raise Http404(f"No invoice with id {pk}.")
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        response = HttpResponse(invoice_pdf_stored(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice}.pdf"'
        return response


class CreditNoteLineInline(ReadOnly, TabularInline):
    model = CreditNoteLine
    extra = 0
    fields = ["description", "invoice_line", "amount_shown"]
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_shown(self, line):
        return format_money(line.amount, line.credit_note.currency)


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAmounts, ReadOnly, ModelAdmin):
    """Credit notes are issued from their invoice's page ("Issue a credit note"), never edited."""

    list_display = ["number", "invoice", "customer", "issue_date", "kind", "total_shown"]
    fields = [
        "number",
        "invoice",
        "customer",
        "kind",
        "reason",
        "change",
        "currency",
        "issue_date",
        "subtotal_shown",
        "tax_shown",
        "total_shown",
        "issued_by",
        "created_at",
    ]
    readonly_fields = fields
    list_select_related = ["invoice", "customer"]
    search_fields = ["number", "invoice__number", "customer__name"]
    inlines = [CreditNoteLineInline]
    actions_detail = ["detail_pdf"]

    @action(description="Download PDF", icon="picture_as_pdf", permissions=["view"])
    def detail_pdf(self, request, object_id):
        return redirect(reverse("admin:invoicing_creditnote_pdf", args=[object_id]))

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoicing_creditnote_pdf",
            )
        ]
        return urls + super().get_urls()

    def pdf_view(self, request, pk):
        note = self.get_object(request, pk)
        if note is None:
            raise Http404(f"No credit note with id {pk}.")
        if not self.has_view_permission(request, note):
            raise PermissionDenied
        response = HttpResponse(credit_note_pdf(note), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{note}.pdf"'
        return response


@admin.register(NumberSeries)
class NumberSeriesAdmin(ReadOnly, ModelAdmin):
    """The gapless counters: an edit here would skip or repeat invoice numbers."""

    list_display = ["name", "next_value"]
