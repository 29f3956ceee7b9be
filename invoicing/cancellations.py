"""What a cancellation settles: the unused prepaid time credited by a credit note, and, once the
final invoice is out, the prepaid credits by the contract's rule (forfeited or refunded).

`cancellation_settle` is called by the billing of every cancelled subscription
(invoicing.services.subscription_bill, under the subscription's lock, after every billing date due
is invoiced and finalized), so it runs again and again: each step is keyed by the cancellation (the
SubscriptionChange, kept on its credit notes as `CreditNote.change`) and does nothing the second
time.

1. Unused prepaid time, at once. For each finalized or paid invoice of the subscription, each
   positive fee line (not a one-time fee) or proration line whose service window [start, end)
   reaches past the cancellation date D is credited
   amount × days(max(start, D), end) / days(start, end), rounded once per line and capped by
   what is left uncredited on the line (and on the invoice): one credit note per invoice, by
   line, "Cancelled from D: unused time of <period>". Drafts are not settled: the billing run
   finalizes every invoice in the transaction that builds it, so none is left by the time this
   runs.
2. Prepaid credits, once every billing date up to D is invoiced (the final invoice bills the
   usage up to D, drawing on the credits first). "forfeit": each credit is closed. "refund": a
   money credit's balance is credited back by amount ("Unused prepaid credit refunded") on the
   subscription's first invoice (the one that billed the prepaid credit, with the one-time fees),
   capped at what is left to credit there, then closed; unit credits are forfeited.
"""

import datetime as dt
from decimal import Decimal

from core.formatting import format_money
from core.money import quantum, round_money
from invoicing.corrections import CREDITABLE, credit_note_issue, line_uncredited
from invoicing.models import CreditNote, Invoice, InvoiceLine
from invoicing.schedule import billing_schedule, unbilled
from subscriptions.models import PrepaidCredit, Subscription, SubscriptionChange
from subscriptions.services import prepaid_credit_close

REFUND_REASON = "Unused prepaid credit refunded"


def cancellation_of(subscription: Subscription) -> SubscriptionChange | None:
    return (
        subscription.changes.filter(kind=SubscriptionChange.Kind.CANCELLATION)
        .order_by("-at", "-id")
        .first()
    )


def _invoices(subscription: Subscription):
    return Invoice.objects.filter(subscription=subscription, status__in=CREDITABLE).order_by(
        "billing_date", "id"
    )


def _words(day: dt.date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _period_words(start: dt.date, end: dt.date) -> str:
    last = end - dt.timedelta(days=1)
    return f"{start:%b} {start.day} – {last:%b} {last.day}, {last.year}"


def _within(subtotal_left: Decimal, invoice: Invoice) -> Decimal:
    """The largest subtotal whose total with the invoice's tax fits in `subtotal_left` (the
    invoice's total not credited yet)."""
    currency = str(invoice.currency)
    step = quantum(currency)
    amount = round_money(subtotal_left / (1 + invoice.tax_rate / 100), currency)
    while amount > 0 and amount + round_money(amount * invoice.tax_rate / 100, currency) > (
        subtotal_left
    ):
        amount -= step
    return max(amount, Decimal(0))


def unused_time(line: InvoiceLine, day: dt.date) -> Decimal:
    """What of a line's service window from `day` on was paid and will not be used, rounded."""
    start, end = line.period_start, line.period_end
    total_days = (end - start).days
    if line.amount <= 0 or end <= day or total_days <= 0:
        return Decimal(0)
    unused_days = (end - max(start, day)).days
    credit = round_money(line.amount * unused_days / total_days, str(line.invoice.currency))
    return min(credit, max(line_uncredited(line), Decimal(0)))


def _credit_unused_time(subscription: Subscription, cancellation: SubscriptionChange) -> None:
    day = cancellation.effective_date
    settled = set(
        CreditNote.objects.filter(change=cancellation, kind=CreditNote.Kind.LINES).values_list(
            "invoice_id", flat=True
        )
    )
    for invoice in _invoices(subscription).exclude(pk__in=settled):
        wanted: dict[int, Decimal] = {}
        windows = []
        for line in invoice.lines.select_related("item", "invoice").filter(
            kind__in=[InvoiceLine.Kind.FEE, InvoiceLine.Kind.PRORATION], period_end__gt=day
        ):
            if line.item is not None and line.item.is_one_time:
                continue
            credit = unused_time(line, day)
            if credit > 0:
                wanted[line.pk] = credit
                windows.append((line.period_start, line.period_end))
        if not wanted:
            continue
        room = _within(invoice.total - invoice.credited_amount, invoice)
        for pk in reversed(list(wanted)):  # an invoice credited before: trim the last lines
            over = sum(wanted.values()) - room
            if over <= 0:
                break
            wanted[pk] = max(wanted[pk] - over, Decimal(0))
        wanted = {pk: amount for pk, amount in wanted.items() if amount > 0}
        if not wanted:
            continue
        start = min(start for start, _ in windows)
        end = max(end for _, end in windows)
        credit_note_issue(
            invoice=invoice,
            lines=wanted,
            reason=f"Cancelled from {_words(day)}: unused time of {_period_words(start, end)}",
            issued_by=cancellation.by,
            change=cancellation,
        )


def _final_invoice_out(subscription: Subscription, day: dt.date, today: dt.date) -> bool:
    if today < day:
        return False
    due = [d for d in billing_schedule(subscription) if d.date <= day]
    return not unbilled(subscription, due, today=today)


def _settle_credits(subscription: Subscription, cancellation: SubscriptionChange) -> None:
    day = cancellation.effective_date
    refund = subscription.unused_credit_on_cancel == Subscription.UnusedCredit.REFUND
    first = _invoices(subscription).filter(change__isnull=True).first()
    credits = PrepaidCredit.objects.filter(subscription=subscription, remaining__gt=0).order_by(
        "granted_on", "id"
    )
    for credit in credits.select_related("metric"):
        why = f"forfeited, subscription cancelled from {_words(day)}"
        if refund and credit.metric_id is None and first is not None:
            first.refresh_from_db()
            amount = min(credit.remaining, _within(first.total - first.credited_amount, first))
            if amount > 0:
                note = credit_note_issue(
                    invoice=first,
                    amount=amount,
                    reason=REFUND_REASON,
                    issued_by=cancellation.by,
                    change=cancellation,
                )
                currency = str(subscription.currency)
                why = f"{format_money(amount, currency)} refunded by credit note {note.number}"
                if amount < credit.remaining:
                    why += f" (invoice {first} had no more to credit), the rest forfeited"
        prepaid_credit_close(credit=credit, reason=why)


def cancellation_settle(*, subscription: Subscription, today: dt.date) -> None:
    """Settle a cancelled subscription (idempotent: keyed by its cancellation). Call under the
    subscription's lock, after its due billing dates are invoiced."""
    cancellation = cancellation_of(subscription)
    if cancellation is None or subscription.canceled_on is None:
        return
    _credit_unused_time(subscription, cancellation)
    if _final_invoice_out(subscription, subscription.canceled_on, today):
        _settle_credits(subscription, cancellation)
