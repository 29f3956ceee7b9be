from django import forms
from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnly
from core.errors import DomainError
from invoicing.models import Invoice
from receivables import selectors, services
from receivables.models import Payment, PaymentAllocation


class PaymentForm(forms.ModelForm):
    class Meta:
        model = Payment
        fields = ["customer", "amount", "currency", "received_on", "method", "reference"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and {"customer", "amount", "currency"} <= data.keys():
            try:
                services.payment_validate(
                    customer=data["customer"], amount=data["amount"], currency=data["currency"]
                )
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


class PaymentAllocationInline(ReadOnly, admin.TabularInline):
    model = PaymentAllocation
    extra = 0
    readonly_fields = ["invoice", "amount", "created_at"]


@admin.action(description="Apply to the customer's oldest open invoices", permissions=["change"])
def apply_to_open_invoices(modeladmin, request, queryset):
    for payment in queryset:
        open_invoices = Invoice.objects.filter(
            customer=payment.customer, status=Invoice.Status.FINALIZED
        ).order_by("due_date", "id")
        paid = []
        for invoice in open_invoices:
            if selectors.payment_unapplied(payment) <= 0:
                break
            try:
                invoice = services.payment_apply(payment=payment, invoice=invoice)
            except DomainError as exc:
                modeladmin.message_user(request, f"{invoice}: {exc.message}", messages.ERROR)
                continue
            paid.append(f"{invoice} ({invoice.get_status_display().lower()})")
        left = selectors.payment_unapplied(payment)
        modeladmin.message_user(
            request,
            f"Payment {payment.reference or payment.pk} applied to "
            f"{', '.join(paid) or 'no invoice'}; {left} {payment.currency} left unapplied.",
            messages.SUCCESS if paid else messages.WARNING,
        )


@admin.register(Payment)
class PaymentAdmin(SimpleHistoryAdmin):
    list_display = [
        "customer",
        "amount",
        "currency",
        "received_on",
        "method",
        "reference",
        "unapplied",
    ]
    list_filter = ["method", "currency"]
    search_fields = ["customer__name", "reference"]
    autocomplete_fields = ["customer"]
    inlines = [PaymentAllocationInline]
    actions = [apply_to_open_invoices]

    @admin.display(description="Unapplied")
    def unapplied(self, obj):
        return selectors.payment_unapplied(obj)

    form = PaymentForm

    def get_readonly_fields(self, request, obj=None):
        # A recorded payment is a fact: correct it with a new document, not an edit.
        return ["customer", "amount", "currency", "received_on"] if obj else []
