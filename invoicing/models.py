import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from core.fields import amount_field, price_field, quantity_field
from core.formatting import format_money, format_quantity
from customers.models import Customer
from subscriptions.models import (
    PrepaidCredit,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)


class Invoice(models.Model):
    """What a subscription owes at one billing date: fees in advance for the period that starts,
    usage in arrears for the period that ended. Immutable once finalized."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="invoices"
    )
    billing_date = models.DateField(help_text="The period boundary this invoice bills.")
    change = models.ForeignKey(
        SubscriptionChange,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="An invoice of its own for a contract change invoiced at once (its proration).",
    )
    currency = CurrencyField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(max_length=30, unique=True, null=True, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    subtotal = amount_field(default=0)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=4, default=0)
    tax_amount = amount_field(default=0)
    total = amount_field(default=0)
    customer_snapshot = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # The sum of its credit notes' totals, kept under the invoice's row lock by credit_note_issue;
    # the database refuses more than the total (invoice_credited_within_total).
    credited_amount = amount_field(default=0)
    # What settles it besides credit notes, kept under the invoice's row lock: payments applied
    # and credit balance applied, net of what was un-applied (receivables' allocations and
    # CreditBalanceEntry "applied"); amounts written off as bad debt; and the part of its credit
    # notes that went to the customer's credit balance because it was already paid. The database
    # refuses an open amount below zero (invoice_open_not_negative).
    paid_amount = amount_field(default=0)
    written_off_amount = amount_field(default=0)
    credit_to_balance = amount_field(default=0)
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    void_reason = models.TextField(blank=True)
    # When the invoice email went out (invoicing.documents.email_invoice_once): set in the same
    # transaction that holds the row lock while sending, so it is sent once. Delivery
    # bookkeeping, not the document: not in the history.
    emailed_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["emailed_at"])

    class Meta:
        ordering = ["-billing_date", "-id"]
        permissions = [
            ("issue_credit_note", "Can issue a credit note on an invoice"),
            ("void_invoice", "Can void an invoice"),
        ]
        indexes = [
            # AR aging reads the invoices not paid (paid ones only when rows dated after the
            # as-of date touch them): receivables.aging.AGING_SQL.
            models.Index(
                fields=["issue_date"],
                condition=models.Q(status__in=["finalized", "void"]),
                name="invoice_unpaid_issue_date",
            )
        ]
        constraints = [
            # A void invoice does not count: what it billed is billed again by a new invoice.
            models.UniqueConstraint(
                fields=["subscription", "billing_date"],
                condition=~models.Q(status="void") & models.Q(change__isnull=True),
                name="invoice_one_per_subscription_period",
            ),
            models.UniqueConstraint(
                fields=["change"],
                condition=~models.Q(status="void") & models.Q(change__isnull=False),
                name="invoice_one_per_change",
            ),
            # A credit note never credits more than the invoice's total. (A contract change
            # that credits more than it charges makes an invoice below zero: nothing to credit,
            # the customer's balance is in their favour.)
            models.CheckConstraint(
                condition=models.Q(credited_amount=0)
                | models.Q(credited_amount__gt=0, credited_amount__lte=models.F("total")),
                name="invoice_credited_within_total",
            ),
            models.CheckConstraint(
                condition=models.Q(status="draft") | models.Q(number__isnull=False),
                name="invoice_issued_has_number",
            ),
            # open = total − (credited − credit_to_balance) − paid − written off ≥ 0, with each
            # part ≥ 0; an invoice below zero is settled by going to the credit balance whole.
            # Compared within half of the amounts' last decimal (they have 4): SQLite adds them
            # as doubles (1,227.11 + 2,181.53 = 3,408.6400000000003 > 3,408.64), PostgreSQL
            # exactly, where an overdraft of 0.0001 or more is still refused.
            models.CheckConstraint(
                condition=models.Q(
                    total__lt=0, paid_amount=0, written_off_amount=0, credit_to_balance=0
                )
                | models.Q(
                    paid_amount__gte=0,
                    written_off_amount__gte=0,
                    credit_to_balance__gte=0,
                    credit_to_balance__lte=models.F("credited_amount"),
                    total__gte=models.F("credited_amount")
                    - models.F("credit_to_balance")
                    + models.F("paid_amount")
                    + models.F("written_off_amount")
                    - models.Value(
                        Decimal("0.00005"),
                        output_field=models.DecimalField(max_digits=6, decimal_places=5),
                    ),
                ),
                name="invoice_open_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft #{self.pk}"

    @property
    def open_amount(self):
        """What is left to pay: total − credit notes (less what went to the credit balance) −
        payments and credit applied − write-offs. Zero on a draft, a void invoice or one below
        zero."""
        if self.status not in (self.Status.FINALIZED, self.Status.PAID) or self.total <= 0:
            return self.total * 0
        return (
            self.total
            - self.credited_amount
            + self.credit_to_balance
            - self.paid_amount
            - self.written_off_amount
        )


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        FEE = "fee", "Fee"
        USAGE = "usage", "Usage"
        TRUE_UP = "true_up", "Minimum commitment true-up"
        CREDIT = "credit", "Prepaid credit"
        ADJUSTMENT = "adjustment", "Late usage adjustment"
        PRORATION = "proration", "Proration of a contract change"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    item = models.ForeignKey(
        SubscriptionItem, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    description = models.CharField(max_length=300)
    period_start = models.DateField()
    period_end = models.DateField()  # exclusive: the next period's start (core.periods)
    quantity = quantity_field()
    unit_price = price_field(null=True, blank=True)
    amount = amount_field(help_text="Rounded once to the currency's minor unit.")
    explanation = models.JSONField(default=list, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self) -> str:
        return self.description

    @property
    def shows_quantity(self) -> bool:
        """Whether the documents print its quantity (true-ups, credits and late-usage
        adjustments are amounts only)."""
        return self.kind in (self.Kind.FEE, self.Kind.USAGE, self.Kind.PRORATION)

    @property
    def last_day(self) -> dt.date:
        """The service period's last day included, as people read a period: Nov 16 – Dec 15."""
        return max(self.period_start, self.period_end - dt.timedelta(days=1))


class NumberSeries(models.Model):
    """A gapless counter, locked (SELECT … FOR UPDATE) while a number is taken at finalization."""

    name = models.CharField(max_length=20, primary_key=True)
    next_value = models.PositiveBigIntegerField(default=1)

    class Meta:
        verbose_name_plural = "number series"

    def __str__(self) -> str:
        return f"{self.name} (next {self.next_value})"


class CreditUse(models.Model):
    """A draw on a prepaid credit by one invoice line (units or money). Append-only."""

    credit = models.ForeignKey(PrepaidCredit, on_delete=models.PROTECT, related_name="uses")
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, related_name="credit_uses"
    )
    amount = quantity_field()

    def __str__(self) -> str:
        credit = self.credit
        if credit.metric_id:
            drawn = format_quantity(self.amount, credit.metric.code)
        else:
            drawn = format_money(self.amount, credit.subscription.currency)
        return f"{drawn} from {credit}"


class CreditNote(models.Model):
    """A correction of a finalized (or paid) invoice, issued with its own gapless number (CN-…).
    Immutable once issued: a credit note is never edited, only issued."""

    class Kind(models.TextChoices):
        FULL = "full", "Full"
        LINES = "lines", "By line"
        AMOUNT = "amount", "Amount"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    change = models.ForeignKey(
        SubscriptionChange,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The cancellation whose unused time (or refunded credit) it gives back.",
    )
    number = models.CharField(max_length=30, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.TextField(blank=True)
    currency = CurrencyField()
    issue_date = models.DateField()
    subtotal = amount_field()
    tax_rate = models.DecimalField(max_digits=6, decimal_places=4, default=0)
    tax_amount = amount_field()
    total = amount_field()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-issue_date", "-id"]
        indexes = [models.Index(fields=["issue_date"], name="credit_note_issue_date")]
        constraints = [
            models.CheckConstraint(condition=models.Q(total__gt=0), name="credit_note_total_gt_0")
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    """What one credit note gives back: an invoice line's amount (or part of it), or an amount
    with the note's reason (no invoice line)."""

    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, null=True, blank=True, related_name="credits"
    )
    description = models.CharField(max_length=300)
    amount = amount_field(help_text="Rounded to the currency's minor unit.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["credit_note", "position", "id"]

    def __str__(self) -> str:
        return self.description


class CreditBalanceEntry(models.Model):
    """One movement of a customer's credit balance: money on their account, in their favour,
    applied to their next invoices at finalization. Append-only; the balance is the sum of the
    amounts (positive: credit given to the customer; negative: credit used or taken back).

    Receivables posts cash (PAYMENT: a payment's money put on account or taken off it, REFUND);
    invoicing posts credit notes beyond what was left to pay, invoices below zero and the
    applications of the balance to invoices (APPLIED: negative; positive when taken back)."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment on account"
        CREDIT_NOTE = "credit_note", "Credit note on a paid invoice"
        NEGATIVE_INVOICE = "negative_invoice", "Invoice below zero"
        APPLIED = "applied", "Applied to an invoice"
        REFUND = "refund", "Refund"

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="credit_balance_entries"
    )
    currency = CurrencyField()
    amount = amount_field()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    effective_on = models.DateField()
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_balance_entries",
    )
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    memo = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_on", "-id"]
        verbose_name_plural = "credit balance entries"
        indexes = [models.Index(fields=["effective_on"], name="credit_balance_effective_on")]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(amount=0), name="credit_balance_entry_not_zero"
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="applied") | models.Q(invoice__isnull=False),
                name="credit_balance_applied_has_invoice",
            ),
        ]

    def __str__(self) -> str:
        sign = "+" if self.amount > 0 else "−"
        return f"{sign}{format_money(abs(self.amount), self.currency)} {self.get_kind_display()}"


class InvoicePDF(models.Model):
    """An invoice's PDF, rendered once per version of the document: `version` is the SHA-256 of
    the HTML it was rendered from (invoicing.pdf.invoice_html), so anything the PDF shows that
    changes (paid, void, credit balance applied) makes a new version, and nothing else does."""

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, related_name="stored_pdf")
    version = models.CharField(max_length=64)
    content = models.BinaryField()
    rendered_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"PDF of {self.invoice} ({self.version[:12]})"
