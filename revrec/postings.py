"""Journal entries from the billing and receivables documents, posted by a job (journal_sync).

Revrec reads the documents the earlier apps wrote (nothing imports revrec) and posts each one
once through ledger.post_entry (journal_sync: ledger.post_entries, a batch of each kind at a
time): kind + source are unique, so a second run, or two runs at once, post nothing new. The
source names the document ("invoice:12", "allocation:34").

What is posted (Dr / Cr; every line carries the document's customer):

    invoice finalized (issue date)   Dr Accounts receivable total
                                     Cr Deferred revenue subtotal, Cr Sales tax payable tax
      below zero                     Dr Deferred revenue, Dr Sales tax / Cr Customer credit
    invoice voided (void date)       the mirror of the invoice's entry (reverses it)
    credit note (issue date)         Dr Deferred revenue subtotal, Dr Sales tax tax
                                     Cr Accounts receivable (what it took off the open amount)
                                     Cr Customer credit (what went to the credit balance)
    payment received                 Dr Cash / Cr Customer credit (the whole amount)
    allocation row to an invoice     Dr Customer credit / Cr Accounts receivable (signed:
                                     an un-apply or a reversal's row posts the opposite)
    payment reversed                 Dr Customer credit / Cr Cash (the whole amount)
    credit balance applied (signed)  Dr Customer credit / Cr Accounts receivable
    refund                           Dr Customer credit / Cr Cash
    write-off                        Dr Bad debt expense / Cr Accounts receivable
    usage accrual, invoiced          Dr Deferred revenue / Cr Unbilled receivable (revrec.
                                     recognition accrued it: the invoice now bills it)

A payment's cash lands in Customer credit balances and each allocation row moves it to the
invoice (the account doubles as unapplied cash). Rows on account are not posted: the money
stays where the receipt put it. So, per customer and on any date, Accounts receivable is the
sum of the open amounts of their invoices (Invoice.open_amount) and Customer credit balances is
their credit balance (invoicing.balance.credit_balance): each movement of those stored figures
is a row (PaymentAllocation, CreditBalanceEntry, WriteOff, a credit note) that posts the same
movement here, on the same date.
"""

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from django.db.models import CharField, Exists, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from core import clock
from core.money import exact_sum
from invoicing.models import CreditBalanceEntry, CreditNote, Invoice
from receivables.models import Payment, PaymentAllocation, Refund, WriteOff
from revrec.ledger import BATCH, Line, post_entries, post_entry
from revrec.models import Account, JournalEntry, JournalLine, UsageAccrual
from revrec.recognition import accrual_reverse

Role = Account.Role

INVOICE, INVOICE_VOID = "invoice", "invoice_void"
CREDIT_NOTE = "credit_note"
PAYMENT, PAYMENT_REVERSAL, ALLOCATION = "payment", "payment_reversal", "allocation"
CREDIT_APPLIED, REFUND, WRITE_OFF = "credit_applied", "refund", "write_off"


def _dr(role: str, amount: Decimal, customer, memo: str = "") -> Line:
    """A debit of `amount` on the role's account; a credit when `amount` is below zero."""
    if amount < 0:
        return Line(role=role, credit=-amount, customer=customer, memo=memo)
    return Line(role=role, debit=amount, customer=customer, memo=memo)


def _cr(role: str, amount: Decimal, customer, memo: str = "") -> Line:
    """A credit of `amount` on the role's account; a debit when `amount` is below zero."""
    return _dr(role, -amount, customer, memo)


def _move(
    *, kind, source, on, memo, currency, debit, credit, amount, customer, what, reverses=None
) -> dict:
    """A two-line entry (post_entry's arguments): `amount` (signed) from the `credit` role's
    account to the `debit`'s."""
    return dict(
        kind=kind,
        source=source,
        on=on,
        memo=memo,
        currency=str(currency),
        lines=[_dr(debit, amount, customer, what), _cr(credit, amount, customer, what)],
        reverses=reverses,
    )


# An entry's lines with what mirroring them reads.
_LINES = Prefetch("lines", queryset=JournalLine.objects.select_related("account", "customer"))


def _unposted(queryset: QuerySet, kind: str, prefix: str) -> QuerySet:
    """The documents of `queryset` with no entry of `kind` whose source is "<prefix>:<pk>"."""
    source = Concat(Value(f"{prefix}:"), Cast("pk", output_field=CharField()))
    posted = JournalEntry.objects.filter(kind=kind, source=OuterRef("journal_source"))
    return queryset.annotate(journal_source=source).filter(~Exists(posted)).order_by("pk")


def _issued(invoice: Invoice) -> bool:
    return invoice.issue_date is not None and bool(invoice.subtotal or invoice.tax_amount)


def _post(entry: dict | None) -> JournalEntry | None:
    return None if entry is None else post_entry(**entry)


def invoice_post(invoice: Invoice) -> JournalEntry | None:
    """The finalized invoice's entry (None for an invoice of nothing: no entry)."""
    return _post(invoice_entry(invoice))


def invoice_entry(invoice: Invoice) -> dict | None:
    if not _issued(invoice):
        return None
    customer = invoice.customer
    what = f"Invoice {invoice.number}"
    if invoice.total >= 0:
        settle = _dr(Role.ACCOUNTS_RECEIVABLE, invoice.total, customer, what)
    else:  # below zero: the customer's credit balance takes it whole
        settle = _cr(Role.CUSTOMER_CREDIT, -invoice.total, customer, what)
    return dict(
        kind=INVOICE,
        source=f"invoice:{invoice.pk}",
        on=invoice.issue_date,
        memo=f"{what} to {customer}",
        currency=str(invoice.currency),
        lines=[
            settle,
            _cr(Role.DEFERRED_REVENUE, invoice.subtotal, customer, what),
            _cr(Role.TAX_PAYABLE, invoice.tax_amount, customer, what),
        ],
    )


def void_date(invoice: Invoice) -> dt.date:
    # The day in the project's time zone, as the aging counts it (voided_at__date).
    return timezone.localtime(invoice.voided_at).date()


def invoice_void_post(invoice: Invoice) -> JournalEntry | None:
    """The mirror of a voided invoice's entry, on the day it was voided."""
    entry = invoice_post(invoice)
    if entry is None:
        return None
    entry = JournalEntry.objects.prefetch_related(_LINES).get(pk=entry.pk)
    return post_entry(**invoice_void_entry(invoice, entry))


def invoice_void_entry(invoice: Invoice, entry: JournalEntry) -> dict:
    """The mirror of the invoice's `entry` (its lines read through select_related, or the
    prefetched `entry.lines.all()`)."""
    return dict(
        kind=INVOICE_VOID,
        source=f"invoice:{invoice.pk}",
        on=void_date(invoice),
        memo=f"Invoice {invoice.number} voided: {invoice.void_reason}",
        currency=entry.currency,
        lines=[
            Line(
                account=line.account,
                debit=line.credit,
                credit=line.debit,
                customer=line.customer,
                memo=line.memo,
            )
            for line in entry.lines.all()
        ],
        reverses=entry,
    )


def credit_note_post(note: CreditNote) -> JournalEntry:
    """Revenue and tax given back; receivable reduced by what the note took off the invoice's
    open amount, the rest (a paid invoice) to the customer's credit balance."""
    to_balance = exact_sum(
        CreditBalanceEntry.objects.filter(
            credit_note=note, kind=CreditBalanceEntry.Kind.CREDIT_NOTE
        ).values_list("amount", flat=True)
    )
    return post_entry(**credit_note_entry(note, to_balance))


def credit_note_entry(note: CreditNote, to_balance: Decimal) -> dict:
    """The note's entry, `to_balance` being what it sent to the customer's credit balance."""
    customer = note.customer
    what = f"Credit note {note.number} on {note.invoice.number}"
    return dict(
        kind=CREDIT_NOTE,
        source=f"credit_note:{note.pk}",
        on=note.issue_date,
        memo=f"{what} to {customer}",
        currency=str(note.currency),
        lines=[
            _dr(Role.DEFERRED_REVENUE, note.subtotal, customer, what),
            _dr(Role.TAX_PAYABLE, note.tax_amount, customer, what),
            _cr(Role.ACCOUNTS_RECEIVABLE, note.total - to_balance, customer, what),
            _cr(Role.CUSTOMER_CREDIT, to_balance, customer, what),
        ],
    )


def _payment_what(payment: Payment) -> str:
    return f"Payment {payment.reference or payment.pk}"


def payment_post(payment: Payment) -> JournalEntry:
    """The cash received, into the customer's credit balances until its rows apply it."""
    return post_entry(**payment_entry(payment))


def payment_entry(payment: Payment) -> dict:
    customer, what = payment.customer, _payment_what(payment)
    return _move(
        kind=PAYMENT,
        source=f"payment:{payment.pk}",
        on=payment.received_on,
        memo=f"{what} from {customer}",
        currency=payment.currency,
        debit=Role.CASH,
        credit=Role.CUSTOMER_CREDIT,
        amount=payment.amount,
        customer=customer,
        what=what,
    )


def payment_reversal_post(payment: Payment) -> JournalEntry:
    """The cash that did not come after all (its rows' un-applies move receivables back)."""
    return post_entry(**payment_reversal_entry(payment, payment_post(payment)))


def payment_reversal_entry(payment: Payment, receipt: JournalEntry) -> dict:
    customer, what = payment.customer, _payment_what(payment)
    return _move(
        kind=PAYMENT_REVERSAL,
        source=f"payment:{payment.pk}",
        on=payment.reversed_on,
        memo=f"{what} from {customer} reversed: {payment.reversal_reason}",
        currency=payment.currency,
        debit=Role.CUSTOMER_CREDIT,
        credit=Role.CASH,
        amount=payment.amount,
        customer=customer,
        what=what,
        reverses=receipt,
    )


def allocation_post(row: PaymentAllocation) -> JournalEntry:
    """A payment's row to an invoice: from the customer's credit to the receivable (signed)."""
    return post_entry(**allocation_entry(row))


def allocation_entry(row: PaymentAllocation) -> dict:
    payment = row.payment
    customer = payment.customer
    what = f"{_payment_what(payment)} to {row.invoice.number}"
    return _move(
        kind=ALLOCATION,
        source=f"allocation:{row.pk}",
        on=row.applied_on,
        memo=f"{what} ({customer})",
        currency=payment.currency,
        debit=Role.CUSTOMER_CREDIT,
        credit=Role.ACCOUNTS_RECEIVABLE,
        amount=row.amount,
        customer=customer,
        what=what,
    )


def credit_applied_post(entry: CreditBalanceEntry) -> JournalEntry:
    """The credit balance applied to an invoice (entry below zero), or taken back (above)."""
    return post_entry(**credit_applied_entry(entry))


def credit_applied_entry(entry: CreditBalanceEntry) -> dict:
    customer = entry.customer
    what = f"Credit balance applied to {entry.invoice.number}"
    return _move(
        kind=CREDIT_APPLIED,
        source=f"credit_balance_entry:{entry.pk}",
        on=entry.effective_on,
        memo=f"{what} ({customer})",
        currency=entry.currency,
        debit=Role.CUSTOMER_CREDIT,
        credit=Role.ACCOUNTS_RECEIVABLE,
        amount=-entry.amount,
        customer=customer,
        what=what,
    )


def refund_post(refund: Refund) -> JournalEntry:
    return post_entry(**refund_entry(refund))


def refund_entry(refund: Refund) -> dict:
    customer = refund.customer
    what = f"Refund {refund.reference or refund.pk}"
    return _move(
        kind=REFUND,
        source=f"refund:{refund.pk}",
        on=refund.refunded_on,
        memo=f"{what} to {customer}",
        currency=refund.currency,
        debit=Role.CUSTOMER_CREDIT,
        credit=Role.CASH,
        amount=refund.amount,
        customer=customer,
        what=what,
    )


def write_off_post(write_off: WriteOff) -> JournalEntry:
    return post_entry(**write_off_entry(write_off))


def write_off_entry(write_off: WriteOff) -> dict:
    invoice = write_off.invoice
    customer = invoice.customer
    what = f"Write-off of {invoice.number}: {write_off.reason}"
    return _move(
        kind=WRITE_OFF,
        source=f"write_off:{write_off.pk}",
        on=write_off.written_off_on,
        memo=f"{what} ({customer})",
        currency=invoice.currency,
        debit=Role.BAD_DEBT,
        credit=Role.ACCOUNTS_RECEIVABLE,
        amount=write_off.amount,
        customer=customer,
        what=what,
    )


def accrual_invoiced_post(accrual: UsageAccrual) -> JournalEntry | None:
    """Usage accrued before its invoice, reversed on the invoice's issue date (the invoice put
    the usage in Deferred revenue): Dr Deferred revenue / Cr Unbilled receivable."""
    return accrual_reverse(accrual=accrual, on=accrual.invoiced_on)


def unposted(today: dt.date | None = None) -> list[tuple[str, QuerySet, Callable]]:
    """(what, the documents of that kind with no entry yet, the function that posts one), for
    every kind of document the journal takes: those dated on or before `today`, or all."""

    def upto(field: str) -> dict:
        return {f"{field}__lte": today} if today else {}

    issued = Invoice.objects.filter(
        status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.VOID],
        **upto("issue_date"),
    ).exclude(subtotal=0, tax_amount=0)
    voided = issued.filter(status=Invoice.Status.VOID, **upto("voided_at__date"))
    applied = CreditBalanceEntry.objects.filter(
        kind=CreditBalanceEntry.Kind.APPLIED, **upto("effective_on")
    )
    rows = PaymentAllocation.objects.filter(invoice__isnull=False, **upto("applied_on"))
    reversed_ = Payment.objects.filter(reversed_on__isnull=False, **upto("reversed_on"))
    invoiced = Invoice.objects.filter(
        subscription_id=OuterRef("obligation__contract__subscription_id"),
        # the period's invoice: at its end, or earlier when a cancellation cut the period short
        billing_date__gt=OuterRef("period_start"),
        billing_date__lte=OuterRef("period_end"),
        status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID],
        change=None,
        **upto("issue_date"),
    )
    accrued = (
        UsageAccrual.objects.filter(reversal=None)
        .exclude(entry=None)
        .annotate(invoiced_on=Subquery(invoiced.values("issue_date")[:1]))
        .exclude(invoiced_on=None)
    )
    return [
        (
            "invoice",
            _unposted(issued, INVOICE, "invoice").select_related("customer"),
            invoice_post,
        ),
        (
            "voided invoice",
            _unposted(voided, INVOICE_VOID, "invoice").select_related("customer"),
            invoice_void_post,
        ),
        (
            "credit note",
            _unposted(
                CreditNote.objects.filter(**upto("issue_date")), CREDIT_NOTE, "credit_note"
            ).select_related("customer", "invoice"),
            credit_note_post,
        ),
        (
            "payment",
            _unposted(
                Payment.objects.filter(**upto("received_on")), PAYMENT, "payment"
            ).select_related("customer"),
            payment_post,
        ),
        (
            "allocation",
            _unposted(rows, ALLOCATION, "allocation").select_related(
                "payment__customer", "invoice"
            ),
            allocation_post,
        ),
        (
            "credit applied",
            _unposted(applied, CREDIT_APPLIED, "credit_balance_entry").select_related(
                "customer", "invoice"
            ),
            credit_applied_post,
        ),
        (
            "refund",
            _unposted(
                Refund.objects.filter(**upto("refunded_on")), REFUND, "refund"
            ).select_related("customer"),
            refund_post,
        ),
        (
            "write-off",
            _unposted(
                WriteOff.objects.filter(**upto("written_off_on")), WRITE_OFF, "write_off"
            ).select_related("invoice__customer"),
            write_off_post,
        ),
        ("usage accrual reversal", accrued, accrual_invoiced_post),
        (
            "payment reversal",
            _unposted(reversed_, PAYMENT_REVERSAL, "payment").select_related("customer"),
            payment_reversal_post,
        ),
    ]


def _to_balance(notes: list[CreditNote]) -> dict[int, Decimal]:
    """What each note sent to the customer's credit balance."""
    sums: dict[int, list[Decimal]] = {note.pk: [] for note in notes}
    for note_id, amount in CreditBalanceEntry.objects.filter(
        credit_note__in=notes, kind=CreditBalanceEntry.Kind.CREDIT_NOTE
    ).values_list("credit_note_id", "amount"):
        sums[note_id].append(amount)
    return {pk: exact_sum(amounts) for pk, amounts in sums.items()}


def _mirrored(documents: list, originals: list[dict | None], entry_of) -> list[dict | None]:
    """The entries that reverse the originals' entries (posted first if they are not yet)."""
    keep = [(d, o) for d, o in zip(documents, originals, strict=True) if o is not None]
    posted = post_entries([o for _, o in keep])
    lines = JournalEntry.objects.prefetch_related(_LINES).in_bulk([e.pk for e in posted])
    return [entry_of(d, lines[e.pk]) for (d, _), e in zip(keep, posted, strict=True)]


def _entries(post: Callable, documents: list) -> list[dict | None]:
    """post_entry's arguments for each document that `post` posts, read in a fixed number of
    queries for the lot."""
    if post is invoice_void_post:
        return _mirrored(documents, [invoice_entry(d) for d in documents], invoice_void_entry)
    if post is payment_reversal_post:
        return _mirrored(documents, [payment_entry(d) for d in documents], payment_reversal_entry)
    if post is credit_note_post:
        to_balance = _to_balance(documents)
        return [credit_note_entry(note, to_balance[note.pk]) for note in documents]
    entry_of = {
        invoice_post: invoice_entry,
        payment_post: payment_entry,
        allocation_post: allocation_entry,
        credit_applied_post: credit_applied_entry,
        refund_post: refund_entry,
        write_off_post: write_off_entry,
    }[post]
    return [entry_of(document) for document in documents]


def journal_sync(*, today: dt.date | None = None) -> int:
    """Post every document dated on or before `today` (default: today) that has no entry yet;
    returns how many entries were posted. Idempotent: each document is posted once however
    often, and however many at once, this runs (a run that loses the race to post a document
    gets the entry the other posted). The documents of a kind are posted ledger.BATCH at a time
    (ledger.post_entries: one transaction and a fixed number of queries per batch)."""
    posted = 0
    for _, documents, post in unposted(today or clock.today()):
        batch = []
        for document in documents.iterator(chunk_size=BATCH):
            batch.append(document)
            if len(batch) == BATCH:
                posted += _post_all(post, batch)
                batch = []
        if batch:
            posted += _post_all(post, batch)
    return posted


def _post_all(post: Callable, documents: list) -> int:
    if post is accrual_invoiced_post:  # each reversal is kept on its accrual: one by one
        return sum(1 for d in documents if getattr(post(d), "posted_now", False))
    entries = [entry for entry in _entries(post, documents) if entry is not None]
    return sum(1 for entry in post_entries(entries) if getattr(entry, "posted_now", False))
