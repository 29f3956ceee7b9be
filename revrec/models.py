from django.conf import settings
from django.db import IntegrityError, models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from core.fields import amount_field
from core.formatting import format_money
from customers.models import Customer
from subscriptions.models import Subscription


class Account(models.Model):
    """An account of the chart of accounts, which finance can edit. The accounts the product
    posts to on its own are found by `role` (one account per role)."""

    class Type(models.TextChoices):
        ASSET = "asset", "Asset"
        LIABILITY = "liability", "Liability"
        EQUITY = "equity", "Equity"
        REVENUE = "revenue", "Revenue"
        EXPENSE = "expense", "Expense"

    class Role(models.TextChoices):
        CASH = "cash", "Cash"
        ACCOUNTS_RECEIVABLE = "accounts_receivable", "Accounts receivable"
        UNBILLED_RECEIVABLE = "unbilled_receivable", "Unbilled receivable"
        DEFERRED_REVENUE = "deferred_revenue", "Deferred revenue"
        REVENUE = "revenue", "Revenue"
        TAX_PAYABLE = "tax_payable", "Sales tax payable"
        CUSTOMER_CREDIT = "customer_credit", "Customer credit balances"
        BAD_DEBT = "bad_debt", "Bad debt expense"

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=Type.choices)
    role = models.CharField(
        max_length=30,
        choices=Role.choices,
        unique=True,
        null=True,
        blank=True,
        help_text="What the product posts here on its own (at most one account per role).",
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class AccountingPeriod(models.Model):
    """A calendar month of the books, [start, end) like every period here. Open until finance
    closes it; a closed period takes no posting (the database refuses one on PostgreSQL)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    start = models.DateField(unique=True, help_text="The first day of the month.")
    end = models.DateField(help_text="The first day of the next month (not included).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reopen_reason = models.CharField(max_length=300, blank=True)
    cash_reviewed_at = models.DateTimeField(
        null=True, blank=True, help_text="When finance confirmed the unapplied cash was reviewed."
    )
    cash_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recognized_at = models.DateTimeField(
        null=True, blank=True, help_text="When the recognition run last ran for this month."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="period_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start:%B %Y}"


class JournalEntry(models.Model):
    """A double entry: its lines' debits equal their credits. Immutable once posted; a correction
    is a reversing entry. `source` names the document it comes from (kind + source are unique, so
    posting a document twice posts it once). Dated in a closed period, it lands on the first day
    of the first open period after it, with `original_date` kept."""

    period = models.ForeignKey(AccountingPeriod, on_delete=models.PROTECT, related_name="entries")
    entry_date = models.DateField()
    original_date = models.DateField()
    kind = models.CharField(max_length=30)
    source = models.CharField(max_length=60)
    memo = models.CharField(max_length=300)
    currency = CurrencyField()
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-entry_date", "-id"]
        verbose_name_plural = "journal entries"
        constraints = [
            models.UniqueConstraint(fields=["kind", "source"], name="journal_entry_once_per_source")
        ]

    def __str__(self) -> str:
        return f"{self.entry_date}: {self.memo}"

    # The database refuses these on PostgreSQL (revrec/migrations/0004_ledger_enforcement); the
    # guards below say the same on SQLite for the ORM's ordinary paths.
    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise IntegrityError("A posted journal entry is immutable: post a reversing entry.")
        if self.period.status != AccountingPeriod.Status.OPEN:
            raise IntegrityError(f"The period {self.period} is closed: nothing posts into it.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise IntegrityError("A posted journal entry is immutable: post a reversing entry.")


class JournalLine(models.Model):
    """One side of an entry: a debit or a credit (exactly one of them above zero) on an account,
    with the customer when it is theirs (receivables, credit balances)."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lines")
    debit = amount_field(default=0)
    credit = amount_field(default=0)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    memo = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["entry", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(debit__gt=0, credit=0) | models.Q(debit=0, credit__gt=0),
                name="journal_line_debit_or_credit",
            )
        ]

    def __str__(self) -> str:
        currency = self.entry.currency
        side = f"Dr {format_money(self.debit, currency)}" if self.debit else ""
        side = side or f"Cr {format_money(self.credit, currency)}"
        return f"{self.account.code} {side}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise IntegrityError("A posted journal line is immutable: post a reversing entry.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise IntegrityError("A posted journal line is immutable: post a reversing entry.")


class RevenueContract(models.Model):
    """The contract revenue is recognized from (ASC 606 step 1): one per subscription, from the
    accepted quote when the subscription came from one, and one per renewal of it (a renewal is
    a new contract for a new term). Created by revrec.recognition."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="revenue_contracts"
    )
    renewal = models.OneToOneField(
        "subscriptions.SubscriptionChange",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The renewal this contract is the new term of (empty: the original contract).",
    )
    quote = models.ForeignKey(
        "quotes.Quote",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The accepted quote the subscription came from (empty: created without one).",
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    currency = CurrencyField()
    start = models.DateField()
    end = models.DateField(help_text="The day the service ends (not included).")
    last_credit_note = models.ForeignKey(
        "invoicing.CreditNote",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The latest credit note applied to its obligations (they apply in order).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription"],
                condition=models.Q(renewal__isnull=True),
                name="revenue_contract_once_per_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"Revenue contract of {self.subscription.external_id}"


class PerformanceObligation(models.Model):
    """A promise of the contract (step 2), with the part of the transaction price allocated to
    it (steps 3–4) and its recognition lines (step 5). One per item of the contract (an item's
    versions, which share its position, are one obligation changed prospectively)."""

    class Kind(models.TextChoices):
        RATABLE = "ratable", "Series over time (ratable)"
        POINT_IN_TIME = "point_in_time", "At a point in time"
        USAGE = "usage", "Usage (as invoiced)"

    contract = models.ForeignKey(
        RevenueContract, on_delete=models.CASCADE, related_name="obligations"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    item = models.ForeignKey(
        "subscriptions.SubscriptionItem",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The contract's item (its latest version taken into account).",
    )
    charge = models.ForeignKey(
        "catalog.Charge", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    position = models.PositiveSmallIntegerField(help_text="The item's position in the contract.")
    description = models.CharField(max_length=200)
    service_start = models.DateField()
    service_end = models.DateField(help_text="Not included.")
    ssp = amount_field(
        default=0, help_text="Standalone selling price used for the allocation (for the term)."
    )
    fixed_consideration = amount_field(
        default=0, help_text="What the contract bills for it, net of discounts (fixed fees)."
    )
    allocated_amount = amount_field(
        default=0,
        help_text="Its share of the transaction price; its lines sum to it exactly. Usage: what "
        "has been recognized so far.",
    )
    credited_amount = amount_field(
        default=0,
        help_text="What credit notes took off it (already out of the allocated amount).",
    )
    last_change = models.ForeignKey(
        "subscriptions.SubscriptionChange",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The latest contract change applied to it (prospectively).",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "position"], name="obligation_once_per_contract_item"
            ),
            models.CheckConstraint(
                condition=models.Q(service_end__gt=models.F("service_start")),
                name="obligation_service_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description} ({self.get_kind_display()})"


class RecognitionLine(models.Model):
    """What one obligation recognizes in one accounting month. Posted once (the journal entry
    is kept); a posted line is never changed."""

    obligation = models.ForeignKey(
        PerformanceObligation, on_delete=models.CASCADE, related_name="lines"
    )
    month = models.DateField(help_text="The accounting period's start (1st of the month).")
    amount = amount_field()
    entry = models.ForeignKey(
        JournalEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["obligation", "month"]
        constraints = [
            models.UniqueConstraint(
                fields=["obligation", "month"], name="recognition_line_once_per_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.month:%b %Y}: {format_money(self.amount, self.obligation.contract.currency)}"


class UsageAccrual(models.Model):
    """Usage recognized before it is invoiced: the rated usage of a billing period not invoiced
    yet, from its start to the end of `month`, posted Dr Unbilled receivable / Cr Deferred
    revenue (the month's usage recognition then moves it to Revenue). Reversed when the
    period's invoice is posted, or by the next month's accrual of the same period."""

    obligation = models.ForeignKey(
        PerformanceObligation, on_delete=models.CASCADE, related_name="accruals"
    )
    month = models.DateField(help_text="The accounting month it is accrued at the end of.")
    period_start = models.DateField(help_text="The billing period's start (what it bills from).")
    period_end = models.DateField(help_text="The billing period's end: its invoice's date.")
    amount = amount_field()
    entry = models.ForeignKey(
        JournalEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reversal = models.ForeignKey(
        JournalEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["obligation", "period_start", "month"]
        constraints = [
            models.UniqueConstraint(
                fields=["obligation", "period_start", "month"], name="usage_accrual_once"
            )
        ]

    def __str__(self) -> str:
        currency = self.obligation.contract.currency
        return f"Usage accrued {self.month:%b %Y}: {format_money(self.amount, currency)}"
