from django.conf import settings
from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from core.fields import amount_field
from core.formatting import format_money
from customers.models import Customer
from invoicing.models import CreditBalanceEntry, Invoice


class Payment(models.Model):
    """Money received from a customer. All of it is allocated: to invoices, or on account (the
    customer's credit balance, applied to their next invoices). A bounced payment is reversed
    (`reversed_on`), never deleted."""

    class Method(models.TextChoices):
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CARD = "card", "Card"
        CHECK = "check", "Check"
        OTHER = "other", "Other"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    amount = amount_field()
    currency = CurrencyField()
    received_on = models.DateField()
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.BANK_TRANSFER)
    reference = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(
        max_length=100,
        unique=True,
        null=True,
        blank=True,
        help_text="The API client's key: a repeated request records the payment once.",
    )
    reversed_on = models.DateField(null=True, blank=True)
    reversal_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_gt_0")
        ]

    def __str__(self) -> str:
        return (
            f"{format_money(self.amount, self.currency)} from {self.customer} "
            f"on {self.received_on:%b %-d, %Y}"
        )


class PaymentAllocation(models.Model):
    """Part of a payment applied to one invoice, or put on account (`invoice` empty: the money
    is in the customer's credit balance, `credit_entry`). Append-only and signed: un-applying
    or reversing adds a row of the opposite sign (`reverses` the row it takes back)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    credit_entry = models.OneToOneField(
        CreditBalanceEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    amount = amount_field()
    applied_on = models.DateField()
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversals"
    )
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["applied_on", "id"]
        indexes = [models.Index(fields=["applied_on"], name="allocation_applied_on")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="allocation_not_zero"),
            models.CheckConstraint(
                condition=models.Q(invoice__isnull=True, credit_entry__isnull=False)
                | models.Q(invoice__isnull=False, credit_entry__isnull=True),
                name="allocation_to_invoice_or_account",
            ),
        ]

    def __str__(self) -> str:
        where = self.invoice or "account"
        return f"{format_money(self.amount, self.payment.currency)} → {where}"


class WriteOff(models.Model):
    """The rest of an invoice written off as bad debt, with the reason. Append-only."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="write_offs")
    amount = amount_field()
    written_off_on = models.DateField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-written_off_on", "-id"]
        indexes = [models.Index(fields=["written_off_on"], name="write_off_written_off_on")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="write_off_amount_gt_0")
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.invoice.currency)} of {self.invoice} written off"


class Refund(models.Model):
    """Credit balance paid back to the customer. Append-only."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="refunds")
    amount = amount_field()
    currency = CurrencyField()
    refunded_on = models.DateField()
    method = models.CharField(
        max_length=20, choices=Payment.Method.choices, default=Payment.Method.BANK_TRANSFER
    )
    reference = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    credit_entry = models.OneToOneField(
        CreditBalanceEntry, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-refunded_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_gt_0")
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} refunded to {self.customer}"


def _check_template(value: str) -> None:
    """A dunning subject or body must render: refused at save with the template's own error."""
    from django.core.exceptions import ValidationError as FieldError
    from django.template import Context, Template, TemplateSyntaxError

    try:
        Template(value).render(Context({}))
    except TemplateSyntaxError as exc:
        raise FieldError(f"This template does not render: {exc}") from exc


class DunningPolicy(models.Model):
    """The reminders sent about an open invoice, relative to its due date (DunningStep)."""

    name = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "dunning policies"

    def __str__(self) -> str:
        return self.name


class DunningStep(models.Model):
    """One reminder: sent `days_from_due` days after the due date (negative: before it).

    Subject and body are Django templates with {{ invoice.number }}, {{ amount_due }},
    {{ due_date }}, {{ customer.name }} and {{ portal_url }}."""

    policy = models.ForeignKey(DunningPolicy, on_delete=models.CASCADE, related_name="steps")
    days_from_due = models.IntegerField(help_text="Days after the due date; negative: before it.")
    name = models.CharField(max_length=100)
    subject = models.CharField(max_length=200, validators=[_check_template])
    body = models.TextField(validators=[_check_template])
    history = HistoricalRecords()

    class Meta:
        ordering = ["policy", "days_from_due"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "days_from_due"], name="dunning_step_one_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.days_from_due:+d} days)"

    def save(self, *args, **kwargs):
        self.full_clean(exclude=["policy"], validate_unique=False, validate_constraints=False)
        super().save(*args, **kwargs)


class DunningNotice(models.Model):
    """A reminder sent about one invoice: at most one per step (the database refuses a second)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_notices")
    step = models.ForeignKey(DunningStep, on_delete=models.PROTECT, related_name="notices")
    sent_on = models.DateField()
    sent_at = models.DateTimeField(auto_now_add=True)
    to = models.EmailField()
    amount_due = amount_field()

    class Meta:
        ordering = ["-sent_on", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "step"], name="dunning_notice_once_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.step.name} for {self.invoice} on {self.sent_on:%b %-d, %Y}"


class DunningPause(models.Model):
    """A customer left out of dunning: for good (`excluded`) or until a date (reminders resume
    on `paused_until`)."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, related_name="dunning_pause"
    )
    excluded = models.BooleanField(default=False, help_text="Never send this customer reminders.")
    paused_until = models.DateField(
        null=True, blank=True, help_text="No reminders before this day (they resume on it)."
    )
    reason = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        if self.excluded:
            return f"{self.customer}: excluded from dunning"
        return f"{self.customer}: paused until {self.paused_until}"


class BankStatement(models.Model):
    """A bank statement file (CSV) finance uploaded; its lines are BankLine rows. The same file
    (by the SHA-256 of its bytes) is refused a second time; a later file that overlaps this one
    adds only the lines not already recorded (BankLine.fingerprint)."""

    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, unique=True)
    currency = CurrencyField(help_text="The account's currency: lines without one are in it.")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    row_count = models.PositiveIntegerField(default=0, help_text="Data rows in the file.")
    new_count = models.PositiveIntegerField(default=0, help_text="Lines recorded from it.")
    duplicate_count = models.PositiveIntegerField(
        default=0, help_text="Lines already recorded from an earlier statement."
    )
    outgoing_count = models.PositiveIntegerField(
        default=0, help_text="Outgoing (negative) lines: not receivables, skipped."
    )

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.uploaded_at:%b %-d, %Y})"


class BankLine(models.Model):
    """Money in, one line of a bank statement, matched to a customer (and invoice) for finance to
    confirm; confirming records a Payment (idempotency key from the fingerprint: once).

    `fingerprint` = SHA-256 of (date, amount, currency, reference, payer, n), n counting identical
    lines within one file: two real payments that look alike are both kept, and the same line in
    an overlapping later statement is not recorded again."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        UNMATCHED = "unmatched", "Unmatched"
        CONFIRMED = "confirmed", "Confirmed"
        IGNORED = "ignored", "Ignored"

    class Rule(models.TextChoices):
        NUMBER = "number", "Invoice number in reference"
        AMOUNT = "amount", "Customer and exact open amount"
        MANUAL = "manual", "Assigned by hand"

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines")
    row = models.PositiveIntegerField(help_text="The line number in the file.")
    booked_on = models.DateField()
    amount = amount_field()
    currency = CurrencyField()
    reference = models.CharField(max_length=300, blank=True)
    payer = models.CharField(max_length=200, blank=True)
    fingerprint = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNMATCHED)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_lines"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_lines"
    )
    rule = models.CharField(max_length=20, choices=Rule.choices, blank=True)
    note = models.CharField(max_length=300, blank=True, help_text="Why unmatched, or ignored.")
    payment = models.OneToOneField(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_line"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["booked_on", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="bank_line_amount_gt_0"),
            models.CheckConstraint(
                condition=~models.Q(status="confirmed") | models.Q(payment__isnull=False),
                name="bank_line_confirmed_has_payment",
            ),
        ]

    def __str__(self) -> str:
        money = format_money(self.amount, self.currency)
        return f"{money} from {self.payer or '?'} on {self.booked_on}"
