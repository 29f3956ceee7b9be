"""The ledger audit (manage.py audit_ledger): every stored figure recomputed from its source
documents, read-only. Each check returns a list of Differences; `audit()` runs them all.

What is checked (each is something the code that writes the figure promises):

- an issued invoice's subtotal, tax and total from its lines (invoicing.builder.invoice_totals:
  tax on the rounded subtotal, rounded once);
- an invoice's stored sums from their rows: credited_amount = its credit notes' totals;
  paid_amount = its payment allocation rows + the credit balance applied to it (APPLIED entries,
  negated); written_off_amount = its write-offs; credit_to_balance = its CREDIT_NOTE entries;
  and, finalized or paid with a total above zero: open amount ≥ 0, status paid ⇔ open 0;
- a credit note's subtotal from its lines, tax and total (invoicing.corrections);
- a payment's allocation rows (to invoices and on account) sum to its amount, to 0 once reversed;
- an obligation's recognition lines sum to its allocated amount (every kind: usage's allocated
  amount is what its lines recognized); a contract's fixed obligations' allocations sum to their
  fixed consideration (allocate() splits exactly, a change adds the same amount to both);
- every journal entry balances; the journal's debits equal its credits per currency;
- per customer and currency, Accounts receivable = the open amounts of their invoices and
  Customer credit balances = their credit balance (invoicing.balance) — what revrec.postings
  promises once every document is posted.

Documents not posted yet (journal_sync has not run since) are "not posted yet" findings. They
are reported, but fail the audit only in strict mode; while any exist, the per-customer tie-out
is skipped (it can only hold once everything is posted).
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from core.money import exact_sum, round_money
from customers.models import Customer
from invoicing.balance import credit_balances
from invoicing.builder import invoice_totals
from invoicing.models import CreditBalanceEntry, CreditNote, CreditNoteLine, Invoice, InvoiceLine
from receivables.models import Payment, PaymentAllocation, WriteOff
from revrec import postings
from revrec.models import (
    Account,
    JournalLine,
    PerformanceObligation,
    RecognitionLine,
    UsageAccrual,
)

ZERO = Decimal(0)
Kind = CreditBalanceEntry.Kind
SETTLEABLE = (Invoice.Status.FINALIZED, Invoice.Status.PAID)


@dataclass(frozen=True)
class Difference:
    check: str  # "invoice_totals", "invoice_sums", …, "not_posted"
    document: str  # "invoice INV-0001", "journal entry 12", …
    message: str
    strict_only: bool = False  # a finding that fails the audit only in strict mode

    def __str__(self) -> str:
        return f"[{self.check}] {self.document}: {self.message}"


def _sums(rows) -> dict:
    """{key: exact sum} of (key, amount) rows."""
    grouped: dict = defaultdict(list)
    for key, amount in rows:
        grouped[key].append(amount)
    return {key: exact_sum(amounts) for key, amounts in grouped.items()}


def _f(amount: Decimal, currency: str) -> str:
    return f"{round_money(amount, currency):f}"


def _differs(diffs, check, document, what, stored, computed, currency, source) -> None:
    if stored != computed:
        diffs.append(
            Difference(
                check,
                document,
                f"{what} {_f(stored, currency)} stored, {_f(computed, currency)} from {source}",
            )
        )


class _Line:  # what invoice_totals reads of a line
    def __init__(self, amount):
        self.amount = amount


def invoice_differences() -> list[Difference]:
    diffs: list[Difference] = []
    invoices = list(Invoice.objects.exclude(status=Invoice.Status.DRAFT).order_by("pk"))
    ids = [i.pk for i in invoices]
    lines: dict = defaultdict(list)
    for invoice_id, amount in InvoiceLine.objects.filter(invoice_id__in=ids).values_list(
        "invoice_id", "amount"
    ):
        lines[invoice_id].append(_Line(amount))
    credited = _sums(CreditNote.objects.values_list("invoice_id", "total"))
    allocated = _sums(
        PaymentAllocation.objects.filter(invoice__isnull=False).values_list("invoice_id", "amount")
    )
    entries = CreditBalanceEntry.objects.filter(invoice__isnull=False)
    applied = _sums(entries.filter(kind=Kind.APPLIED).values_list("invoice_id", "amount"))
    to_balance = _sums(entries.filter(kind=Kind.CREDIT_NOTE).values_list("invoice_id", "amount"))
    written_off = _sums(WriteOff.objects.values_list("invoice_id", "amount"))
    for invoice in invoices:
        currency, doc = str(invoice.currency), f"invoice {invoice.number or invoice.pk}"
        totals = invoice_totals(lines[invoice.pk], tax_rate=invoice.tax_rate, currency=currency)
        for what, stored, computed in (
            ("subtotal", invoice.subtotal, totals.subtotal),
            ("tax", invoice.tax_amount, totals.tax_amount),
            ("total", invoice.total, totals.total),
        ):
            _differs(diffs, "invoice_totals", doc, what, stored, computed, currency, "its lines")
        pk = invoice.pk
        for what, stored, computed, source in (
            ("credited_amount", invoice.credited_amount, credited.get(pk, ZERO), "credit notes"),
            (
                "paid_amount",
                invoice.paid_amount,
                allocated.get(pk, ZERO) - applied.get(pk, ZERO),
                "payment allocations and credit applied",
            ),
            (
                "written_off_amount",
                invoice.written_off_amount,
                written_off.get(pk, ZERO),
                "write-offs",
            ),
            (
                "credit_to_balance",
                invoice.credit_to_balance,
                to_balance.get(pk, ZERO),
                "credit balance entries of its credit notes",
            ),
        ):
            _differs(diffs, "invoice_sums", doc, what, stored, computed, currency, source)
        if invoice.status in SETTLEABLE and invoice.total > 0:
            open_ = invoice.open_amount
            if open_ < 0:
                diffs.append(
                    Difference("invoice_open", doc, f"open amount {_f(open_, currency)} below 0")
                )
            if (invoice.status == Invoice.Status.PAID) != (open_ == 0):
                diffs.append(
                    Difference(
                        "invoice_open",
                        doc,
                        f"status {invoice.status} with open amount {_f(open_, currency)}",
                    )
                )
    return diffs


def credit_note_differences() -> list[Difference]:
    diffs: list[Difference] = []
    lines = _sums(CreditNoteLine.objects.values_list("credit_note_id", "amount"))
    for note in CreditNote.objects.order_by("pk"):
        currency, doc = str(note.currency), f"credit note {note.number}"
        subtotal = lines.get(note.pk, ZERO)
        tax = round_money(subtotal * note.tax_rate / 100, currency)
        for what, stored, computed in (
            ("subtotal", note.subtotal, subtotal),
            ("tax", note.tax_amount, tax),
            ("total", note.total, subtotal + tax),
        ):
            _differs(
                diffs, "credit_note_totals", doc, what, stored, computed, currency, "its lines"
            )
    return diffs


def payment_differences() -> list[Difference]:
    diffs: list[Difference] = []
    rows = _sums(PaymentAllocation.objects.values_list("payment_id", "amount"))
    for payment in Payment.objects.order_by("pk"):
        currency = str(payment.currency)
        allocated = rows.get(payment.pk, ZERO)
        expected = ZERO if payment.reversed_on else payment.amount
        if allocated != expected:
            state = "reversed, expected 0" if payment.reversed_on else "amount"
            diffs.append(
                Difference(
                    "payment_allocated",
                    f"payment {payment.reference or payment.pk}",
                    f"{state} {_f(expected, currency)}, allocation rows sum to "
                    f"{_f(allocated, currency)}",
                )
            )
    return diffs


def recognition_differences() -> list[Difference]:
    diffs: list[Difference] = []
    lines = _sums(RecognitionLine.objects.values_list("obligation_id", "amount"))
    contracts: dict = defaultdict(lambda: [ZERO, ZERO])
    obligations = PerformanceObligation.objects.select_related("contract").order_by("pk")
    for obligation in obligations:
        contract = obligation.contract
        currency = str(contract.currency)
        _differs(
            diffs,
            "recognition",
            f"obligation {obligation.pk} ({obligation.description}, contract {contract.pk})",
            "allocated",
            obligation.allocated_amount,
            lines.get(obligation.pk, ZERO),
            currency,
            "its recognition lines",
        )
        if obligation.kind != PerformanceObligation.Kind.USAGE:
            sums = contracts[(contract.pk, currency)]
            sums[0] += obligation.allocated_amount
            sums[1] += obligation.fixed_consideration - obligation.credited_amount
    for (contract_id, currency), (allocated, fixed) in sorted(contracts.items()):
        _differs(
            diffs,
            "allocation",
            f"contract {contract_id}",
            "allocations",
            allocated,
            fixed,
            currency,
            "fixed consideration less credit notes",
        )
    return diffs


def journal_differences() -> list[Difference]:
    diffs: list[Difference] = []
    rows = JournalLine.objects.values_list("entry_id", "entry__currency", "debit", "credit")
    by_entry: dict = defaultdict(lambda: ([], []))
    by_currency: dict = defaultdict(lambda: ([], []))
    currency_of = {}
    for entry_id, currency, debit, credit in rows.order_by():
        currency_of[entry_id] = str(currency)
        for group in (by_entry[entry_id], by_currency[str(currency)]):
            group[0].append(debit)
            group[1].append(credit)
    for entry_id, (debits, credits) in sorted(by_entry.items()):
        debit, credit = exact_sum(debits), exact_sum(credits)
        if debit != credit:
            currency = currency_of[entry_id]
            diffs.append(
                Difference(
                    "entry_balanced",
                    f"journal entry {entry_id}",
                    f"debits {_f(debit, currency)} ≠ credits {_f(credit, currency)}",
                )
            )
    for currency, (debits, credits) in sorted(by_currency.items()):
        debit, credit = exact_sum(debits), exact_sum(credits)
        if debit != credit:
            diffs.append(
                Difference(
                    "trial_balance",
                    f"journal in {currency}",
                    f"debits {_f(debit, currency)} ≠ credits {_f(credit, currency)}",
                )
            )
    return diffs


def unposted_differences() -> list[Difference]:
    """Documents without their journal entry yet (whatever their date)."""
    return [
        Difference("not_posted", f"{what} {pk}", "not posted yet", strict_only=True)
        for what, documents, _ in postings.unposted()
        for pk in documents.values_list("pk", flat=True)
    ]


def tie_out_differences() -> list[Difference]:
    """Per customer and currency: the journal's receivable and credit balances against the
    documents (all entries, all documents)."""
    diffs: list[Difference] = []
    roles = {
        a.pk: a.role
        for a in Account.objects.filter(
            role__in=[
                Account.Role.ACCOUNTS_RECEIVABLE,
                Account.Role.CUSTOMER_CREDIT,
                Account.Role.UNBILLED_RECEIVABLE,
            ]
        )
    }
    journal: dict = defaultdict(lambda: ([], []))
    rows = JournalLine.objects.filter(account_id__in=roles).values_list(
        "account_id", "customer_id", "entry__currency", "debit", "credit"
    )
    for account_id, customer_id, currency, debit, credit in rows.order_by():
        key = (roles[account_id], customer_id, str(currency))
        journal[key][0].append(debit)
        journal[key][1].append(credit)
    ledger = {}
    for (role, customer_id, currency), (debits, credits) in journal.items():
        net = exact_sum(debits) - exact_sum(credits)
        ledger[(role, customer_id, currency)] = (
            -net if role == Account.Role.CUSTOMER_CREDIT else net
        )
    documents: dict = defaultdict(lambda: ZERO)
    for invoice in Invoice.objects.filter(status__in=SETTLEABLE, total__gt=0).only(
        "customer_id",
        "currency",
        "status",
        "total",
        "credited_amount",
        "paid_amount",
        "written_off_amount",
        "credit_to_balance",
    ):
        key = (Account.Role.ACCOUNTS_RECEIVABLE, invoice.customer_id, str(invoice.currency))
        documents[key] += invoice.open_amount
    for (customer_id, currency), amount in credit_balances().items():
        documents[(Account.Role.CUSTOMER_CREDIT, customer_id, currency)] = amount
    standing = UsageAccrual.objects.filter(reversal=None).exclude(entry=None)
    for customer_id, currency, amount in standing.values_list(
        "obligation__contract__customer_id", "obligation__contract__currency", "amount"
    ).order_by():
        documents[(Account.Role.UNBILLED_RECEIVABLE, customer_id, str(currency))] += amount
    names = {
        Account.Role.ACCOUNTS_RECEIVABLE: ("Accounts receivable", "open amounts of invoices"),
        Account.Role.CUSTOMER_CREDIT: ("Customer credit balances", "credit balance"),
        Account.Role.UNBILLED_RECEIVABLE: ("Unbilled receivable", "usage accruals standing"),
    }
    keys = sorted(set(ledger) | set(documents), key=lambda k: (k[1] or 0, k[2], k[0]))
    names_of = Customer.objects.in_bulk({k[1] for k in keys if k[1] is not None})
    for key in keys:
        role, customer_id, currency = key
        account, source = names[role]
        in_journal, in_documents = ledger.get(key, ZERO), documents.get(key, ZERO)
        if in_journal != in_documents:
            diffs.append(
                Difference(
                    "tie_out",
                    f"customer {names_of.get(customer_id, '-')} {currency}",
                    f"{account} {_f(in_journal, currency)} in the journal, "
                    f"{_f(in_documents, currency)} from the {source}",
                )
            )
    return diffs


def audit() -> list[Difference]:
    """Every difference, in the order of the checks."""
    diffs = (
        invoice_differences()
        + credit_note_differences()
        + payment_differences()
        + recognition_differences()
        + journal_differences()
    )
    unposted = unposted_differences()
    diffs += unposted
    if not unposted:
        diffs += tie_out_differences()
    return diffs
