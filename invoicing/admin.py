from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnly
from core.errors import DomainError
from invoicing import services
from invoicing.models import Invoice, InvoiceLine, NumberSeries
from invoicing.pdf import invoice_pdf


class InvoiceLineInline(ReadOnly, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    fields = ["description", "period_start", "period_end", "quantity", "unit_price", "amount"]
    readonly_fields = fields


@admin.action(description="Finalize selected draft invoices", permissions=["change"])
def finalize(modeladmin, request, queryset):
    for invoice in queryset:
        try:
            services.invoice_finalize(invoice=invoice)
        except DomainError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)


@admin.register(Invoice)
class InvoiceAdmin(SimpleHistoryAdmin):
    list_display = [
        "__str__",
        "customer",
        "billing_date",
        "status",
        "total",
        "currency",
        "due_date",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["number", "customer__name", "subscription__external_id"]
    date_hierarchy = "billing_date"
    inlines = [InvoiceLineInline]
    actions = [finalize]
    readonly_fields = [f.name for f in Invoice._meta.fields] + ["pdf_link"]

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
        return format_html('<a href="{}">Download PDF</a>', url)

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoicing_invoice_pdf",
            )
        ]
        return urls + super().get_urls()

    def pdf_view(self, request, pk):
        invoice = self.get_object(request, pk)
        if invoice is None:
            raise Http404(f"No invoice with id {pk}.")
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice}.pdf"'
        return response


@admin.register(NumberSeries)
class NumberSeriesAdmin(ReadOnly, admin.ModelAdmin):
    """The gapless counters: an edit here would skip or repeat invoice numbers."""

    list_display = ["name", "next_value"]
