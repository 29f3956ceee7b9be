"""Invoicing reads that more than one caller needs: the upcoming invoice (the preview).

The upcoming invoice is the invoice the subscription would get at the billing date that closes
its period in progress, if that period closed now: built by the billing run's own builder
(invoicing.builder.build_invoice) from the same billing date (schedule.upcoming_billing_date),
the same prepaid balances and the same totals, and saved nowhere. On the billing date, with no
usage after the preview, the real invoice equals it line for line.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from core import clock
from customers.models import Customer
from invoicing.builder import build_invoice
from invoicing.models import InvoiceLine
from invoicing.schedule import open_credits, upcoming_billing_date
from subscriptions.models import Subscription


@dataclass(frozen=True)
class UpcomingInvoice:
    subscription: Subscription
    customer: Customer
    currency: str
    billing_date: dt.date  # the end of the period in progress
    period_start: dt.date  # what the period bills: from its start (or a trial's end) …
    period_end: dt.date  # … to its end, exclusive (= billing_date)
    lines: list[InvoiceLine]  # unsaved, in invoice order
    subtotal: Decimal  # the sum of the rounded lines
    tax_rate: Decimal  # percent
    tax_amount: Decimal  # on the rounded subtotal, rounded once
    total: Decimal


def upcoming_invoice(
    *, subscription: Subscription, as_of: dt.date | None = None, live: bool = False
) -> UpcomingInvoice | None:
    """The invoice of the billing date that closes the period in progress on `as_of` (today by
    default), as if that period closed now: its usage so far (rated on the whole period, with
    tiers, free units, caps and minimum true-ups), prepaid credits at today's balance (not drawn),
    late-usage adjustments of earlier periods, fixed fees in arrears for it and in advance for the
    next period, and tax on the rounded subtotal. Writes nothing and locks nothing.

    None when no period is in progress on `as_of`. A billing date with no lines (nothing to bill
    yet) gives an upcoming invoice with no lines and zero totals. `live` reads usage from the
    ingestion rollups (the same figures, in milliseconds at a million events: what current usage,
    the portal and alerts use); without it, from the events, as the billing run does.
    """
    as_of = as_of or clock.today()
    due = upcoming_billing_date(subscription, as_of=as_of)
    if due is None:
        return None
    built = build_invoice(
        subscription=subscription,
        billing_date=due.date,
        advance=due.advance,
        arrears=due.arrears,
        credits=open_credits(subscription),
        billed_periods=due.billed_periods,
        live=live,
    )
    zero = Decimal(0)
    invoice = built.invoice if built else None
    return UpcomingInvoice(
        subscription=subscription,
        customer=subscription.customer,
        currency=str(subscription.currency),
        billing_date=due.date,
        period_start=due.arrears.billed_from,
        period_end=due.arrears.end_date,
        lines=built.lines if built else [],
        subtotal=invoice.subtotal if invoice else zero,
        tax_rate=invoice.tax_rate if invoice else subscription.customer.tax_rate,
        tax_amount=invoice.tax_amount if invoice else zero,
        total=invoice.total if invoice else zero,
    )


def estimated_bill(*, subscription: Subscription, as_of: dt.date) -> Decimal | None:
    """The estimated bill of the period in progress: the upcoming invoice's subtotal, before tax
    (what usage alerts on the bill compare with their threshold). None without a period."""
    upcoming = upcoming_invoice(subscription=subscription, as_of=as_of, live=True)
    return upcoming.subtotal if upcoming else None
