"""What a cancellation settles: the unused prepaid time credited by a credit note, and, once the
final invoice is out, the prepaid credits by the contract's rule (forfeited or refunded).

`cancellation_settle` is called by the billing of every cancelled subscription
(invoicing.services.subscription_bill, under the subscription's lock, after every billing date due
is invoiced and finalized), so it runs again and again: each step is keyed by the cancellation (the
SubscriptionChange, kept on its credit notes as `CreditNote.change`) and does nothing the second
time.

1. Unused prepaid time, at once. For each finalized or paid invoice of the subscription, each
   fee line (not a one-time fee) or proration line whose service window [start, end) reaches
   past the cancellation date D billed amount × days(max(start, D), end) / days(start, end) for
   the time after D, rounded once per line. An invoice gives back the net of its lines (a
   proration's credit of a version an earlier change ended counts against it: nothing is
   credited twice), on its positive lines, each capped by what is left uncredited on the line
   and on the invoice: one credit note per invoice, by line, "Cancelled from D: unused time of
   <period>". Drafts are not settled: the billing run finalizes every invoice in the transaction
   that builds it, so none is left by the time this runs.
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
    """What of a line's service window from `day` on it billed, signed (a proration's credit of
    unused time is negative), rounded once: amount × days after `day` / days of the window."""
    start, end = line.period_start, line.period_end
    total_days = (end - start).days
    if end <= day or total_days <= 0:
        return Decimal(0)
    unused_days = (end - max(start, day)).days
    return round_money(line.amount * unused_days / total_days, str(line.invoice.currency))


def unused_by_invoice(
    subscription: Subscription, day: dt.date
) -> list[tuple[Invoice, Decimal, list[tuple[InvoiceLine, Decimal]]]]:
    """Per invoice: the net of what it billed for the time from `day` on, and its lines that
    billed some of it. The net counts a proration's credit (a version ended by an earlier change
    was already credited its unused time), so nothing is credited twice; a negative net (a
    downgrade invoiced at once) lowers what the later, then the earlier invoices give back."""
    rows = []
    for invoice in _invoices(subscription):
        net, lines = Decimal(0), []
        for line in invoice.lines.select_related("item", "invoice").filter(
            kind__in=[InvoiceLine.Kind.FEE, InvoiceLine.Kind.PRORATION], period_end__gt=day
        ):
            if line.item is not None and line.item.is_one_time:
                continue
            part = unused_time(line, day)
            net += part
            if part > 0:
                lines.append((line, part))
        if lines or net:
            rows.append([invoice, net, lines])
    deficit = -sum((net for _, net, _ in rows if net < 0), Decimal(0))
    for row in reversed(rows):
        if deficit <= 0:
            break
        if row[1] > 0:
            taken = min(row[1], deficit)
            row[1] -= taken
            deficit -= taken
    return [(invoice, net, lines) for invoice, net, lines in rows if net > 0]


def _credit_unused_time(subscription: Subscription, cancellation: SubscriptionChange) -> None:
    """All at once (one transaction, under the subscription's lock): once a cancellation has a
    credit note by line, its unused time is settled."""
    day = cancellation.effective_date
    if CreditNote.objects.filter(change=cancellation, kind=CreditNote.Kind.LINES).exists():
        return
    for invoice, net, lines in unused_by_invoice(subscription, day):
        invoice.refresh_from_db()
        # Only what was not written off can be credited (credit_note_settle: money written off
        # never goes back to the customer).
        creditable = invoice.total - invoice.credited_amount - invoice.written_off_amount
        left = min(net, _within(creditable, invoice))
        wanted: dict[int, Decimal] = {}
        for line, part in lines:
            amount = min(part, max(line_uncredited(line), Decimal(0)), left)
            if amount > 0:
                wanted[line.pk] = amount
                left -= amount
        if not wanted:
            continue
        credited = [line for line, _ in lines if line.pk in wanted]
        start = min(line.period_start for line in credited)
        end = max(line.period_end for line in credited)
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
