"""Revenue contracts, performance obligations and the recognition run (ASC 606 / IFRS 15).

contracts_sync() gives every subscription, once, its revenue contract (linked to the accepted
quote it came from, if any), and every renewal its own contract for its term, with one
performance obligation per item of the contract:

- fixed fees over time (platform fee, seats, fixed fees in arrears): a series satisfied over
  time, RATABLE over its service period (the term, from the trial's end) by the convention of
  settings.REVREC_CONVENTION (daily by default);
- one-time fees (implementation, training): POINT_IN_TIME, recognized in the month they are
  billed from (the delivery date until the product records one);
- usage: variable consideration, USAGE, recognized in the month(s) the usage occurred: as
  invoiced (the right-to-invoice practical expedient), and accrued at a month's end for a billing
  period not invoiced yet (UsageAccrual: Dr Unbilled receivable / Cr Deferred revenue, reversed
  when the period's invoice is posted).

Transaction price: the contract's fixed consideration, measured from the contract, not from
invoices — each fixed item's snapshotted net terms (discounts included) rated per billing period
and prorated by days exactly as billing prorates (`item_fees`), rounded once per period. That is
what the customer is committed to pay for the term, known on day one, and equal to what the
invoices bill for it (the schedule's advance amounts mix items and leave out fees in arrears, so
they cannot be allocated per obligation). It is allocated over the fixed obligations by relative
standalone selling price (`ssp_of`: the item's list terms at the SSP price book line in force
at inception, or its list price) with revrec.allocation.allocate, and each allocation spread
over its service period with revrec.allocation.spread into RecognitionLines, one per obligation
and month, which sum to the allocation exactly. Usage is not allocated: each month's line is the
usage invoiced (or accrued) for it.

A contract change (quantity change, amendment, cancellation) is prospective: from its effective
date D, an obligation it changes gets new allocation = old allocation + the change's new
consideration (what the new version bills from D minus what the old one would have billed from D);
what was scheduled for the days before D stays, and the rest is spread over the remaining service
from D (a cancellation's remainder, the leftover of the SSP reallocation, is recognized in D's
month). An item a change adds is a new obligation at its own fees. A credit note changes the
transaction price of the obligation whose line it credits, with a cumulative catch-up
(contract_apply_credit_notes).

recognize(period) posts, once per line, every line due by the end of `period`: Dr Deferred
revenue / Cr Revenue (kind "recognition", source "recline:<id>"), dated the month's last day (in
the first open period if that month is closed).
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import (
    BigIntegerField,
    CharField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat
from simple_history.utils import bulk_update_with_history

from catalog import rating
from catalog.models import StandaloneSellingPrice
from catalog.selectors import book_line, ssp_book, ssp_line, ssp_value
from core import clock
from core.money import exact_sum, round_money, split
from core.periods import Period, add_months, billing_periods, calendar_months, month_start
from invoicing.models import CreditNote, Invoice, InvoiceLine
from metering.selectors import usage_for_periods
from quotes.models import Quote
from revrec.allocation import allocate, recognized_before, spread
from revrec.bulk import create_with_history, insert_rows
from revrec.ledger import BATCH, Line, post_entries, post_entry, reverse_entry
from revrec.models import (
    Account,
    AccountingPeriod,
    JournalEntry,
    PerformanceObligation,
    RecognitionLine,
    RevenueContract,
    UsageAccrual,
)
from subscriptions.models import (
    BillingPeriod,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)

ZERO = Decimal(0)
Kind = PerformanceObligation.Kind
# Changes applied prospectively; a renewal extends the term (a new contract: not handled yet).
APPLIED_CHANGES = (
    SubscriptionChange.Kind.AMENDMENT,
    SubscriptionChange.Kind.QUANTITY,
    SubscriptionChange.Kind.CANCELLATION,
)


# --- measuring fixed consideration ------------------------------------------------------------


@dataclass(frozen=True)
class TermPeriod:
    """A billing period of the term as signed (what item_fees prices on)."""

    start_date: dt.date
    end_date: dt.date
    billed_from: dt.date
    priced_end: dt.date


def item_fees(
    item: SubscriptionItem,
    periods: list[TermPeriod],
    currency: str,
    *,
    list_price: bool = False,
    until: dt.date | None = None,
    since: dt.date | None = None,
    ssp: StandaloneSellingPrice | None = None,
) -> Decimal:
    """What a fixed item's version bills over the term (net terms; with `list_price`, its list
    terms): each billing period's fee rated on the terms in force, prorated by days where the
    version covers only part of the period (billing's rule: a trial's cut period is billed
    whole unless the item is prorated), rounded once per period. A one-time fee counts once.
    `until` replaces the version's end (what it would have billed had it run on), `since` counts
    only the days from then. With `ssp` (a price book line) and `list_price`, the list terms
    priced at that standalone selling price."""
    if item.is_usage:
        return ZERO
    if item.is_one_time:
        return round_money(
            rating.rate(_pricing(item, item.pricing, list_price, ssp), item.quantity).amount,
            currency,
        )
    total = ZERO
    start = max(item.starts_on or dt.date.min, since or dt.date.min)
    end = until or item.ends_on or dt.date.max
    for period in periods:
        lo, hi = max(period.billed_from, start), min(period.end_date, end)
        if lo >= hi:
            continue
        priced = Period(period.start_date, period.priced_end)
        window = Period(lo, hi)
        pricing, quantity = item.terms_on(lo)
        amount = rating.rate(_pricing(item, pricing, list_price, ssp), quantity).amount
        after_trial = window == Period(period.billed_from, priced.end) and lo > priced.start
        if window != priced and (item.prorated or not after_trial):
            amount = amount * window.days / priced.days
        total += round_money(amount, currency)
    return total


def _pricing(
    item: SubscriptionItem, net: dict, list_price: bool, ssp: StandaloneSellingPrice | None = None
) -> dict:
    """The terms rated: the net ones, or the list ones — with the unit price a price book line
    gives (its amount, or its percent of the list unit price) when one is given and the model
    has a unit price (ssp_of scales the others)."""
    if not list_price:
        return net
    terms = item.list_pricing or net
    if ssp is None or not rating.pricing_model(terms, strict=False).unit_price:
        return terms
    unit = rating.pricing_value(terms, "unit_price")
    return {**terms, "unit_price": str(ssp_value(ssp, unit))}


def ssp_of(
    item: SubscriptionItem,
    periods: list[TermPeriod],
    currency: str,
    on: dt.date,
    book=None,
    until: dt.date | None = None,
) -> Decimal:
    """The standalone selling price of an item's obligation for the term: its list terms priced
    at the SSP price book line of its charge in force on `on` (the contract's inception, or the
    change's effective date), over the term as billing prices it. No line in force (or no
    charge: a fee typed on the quote): the list price itself. `book`: the plans' price book
    preloaded (catalog.selectors.ssp_book), for callers making many contracts. `until`: the
    version's end as signed (signed_end), not as a later change or cancellation cut it."""
    if book is not None:
        line = book_line(book, item.charge, on)
    else:
        line = ssp_line(item.charge, on=on) if item.charge_id else None
    fees = item_fees(item, periods, currency, list_price=True, ssp=line, until=until)
    terms = item.list_pricing or item.pricing
    unit_priced = rating.pricing_model(terms, strict=False).unit_price
    # Without a unit price a percent scales the list fees; an amount cannot apply (list kept).
    if line is not None and not unit_priced and line.percent_of_list is not None:
        fees = round_money(fees * line.percent_of_list / Decimal(100), currency)
    return fees


# --- contracts and obligations ----------------------------------------------------------------


def contracts_sync() -> int:
    """A revenue contract for every subscription without one and for every renewal without one
    (a renewal is a new contract for its term), then the contract changes and credit notes not
    applied yet. Idempotent; returns the number of contracts made. The new subscriptions'
    contracts are made BATCH at a time in a fixed number of queries (`_contracts_create`);
    renewals, and the contracts with a change or a credit note not applied yet, are looked at
    one by one."""
    made = 0
    new = list(
        Subscription.objects.exclude(pk__in=_originals())
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for at in range(0, len(new), BATCH):
        made += _contracts_create(new[at : at + BATCH])
    renewals = SubscriptionChange.objects.filter(kind=SubscriptionChange.Kind.RENEWAL).exclude(
        pk__in=RevenueContract.objects.exclude(renewal=None).values("renewal_id")
    )
    for renewal in renewals.select_related("subscription").order_by("effective_date", "pk"):
        if contract_create(subscription=renewal.subscription, renewal=renewal) is not None:
            made += 1
    latest = PerformanceObligation.objects.filter(
        contract=OuterRef("pk"), last_change__isnull=False
    )
    latest = latest.order_by("-last_change_id").values("last_change_id")[:1]
    waiting = SubscriptionChange.objects.filter(
        subscription_id=OuterRef("subscription_id"),
        kind__in=APPLIED_CHANGES,
        pk__gt=OuterRef("applied_up_to"),
        effective_date__gte=OuterRef("start"),
        effective_date__lte=OuterRef("end"),
    )
    credited = CreditNote.objects.filter(
        invoice__subscription_id=OuterRef("subscription_id"),
        change=None,
        pk__gt=OuterRef("credited_up_to"),
    )
    pending = (
        RevenueContract.objects.annotate(
            applied_up_to=Coalesce(Subquery(latest), 0, output_field=BigIntegerField()),
            credited_up_to=Coalesce(F("last_credit_note_id"), 0, output_field=BigIntegerField()),
        )
        .filter(Exists(waiting) | Exists(credited))
        .select_related("subscription")
        .order_by("start", "pk")
    )
    for contract in pending:
        contract_apply_changes(contract=contract)
        contract_apply_credit_notes(contract=contract)
    return made


def next_renewal(contract: RevenueContract) -> dt.date | None:
    """The start of the renewal after the contract's term, if there is one."""
    return (
        contract.subscription.changes.filter(
            kind=SubscriptionChange.Kind.RENEWAL, effective_date__gt=contract.start
        )
        .order_by("effective_date")
        .values_list("effective_date", flat=True)
        .first()
    )


def term_end(contract: RevenueContract) -> dt.date:
    """The day the contract's term ends (not included): the next renewal's start, else the
    subscription's end (its term's, or an earlier cancellation)."""
    renewal, end = next_renewal(contract), contract.subscription.end_date
    return max(min(renewal or end, end), contract.start + dt.timedelta(days=1))


def _contracts_create(pks: list[int]) -> int:
    """contract_create for each of the subscriptions (those still without a contract), made at
    once: the same contracts, obligations, allocations and lines. If another run makes one of
    them meanwhile, falls back to contract_create one by one. Returns how many were made."""
    items = SubscriptionItem.objects.select_related("charge", "ended_by").order_by("position", "id")
    subscriptions = list(
        Subscription.objects.filter(pk__in=pks)
        .exclude(pk__in=_originals())
        .select_related("customer")
        .prefetch_related(Prefetch("items", queryset=items))
        .order_by("pk")
    )
    book = ssp_book({subscription.plan_id for subscription in subscriptions})
    quotes: dict[int, Quote] = {}
    for quote in Quote.objects.filter(subscription__in=subscriptions).order_by("-created_at"):
        quotes.setdefault(quote.subscription_id, quote)
    try:
        with transaction.atomic():
            contracts = create_with_history(
                RevenueContract,
                [
                    RevenueContract(
                        subscription=subscription,
                        quote=quotes.get(subscription.pk),
                        customer=subscription.customer,
                        currency=str(subscription.currency),
                        start=subscription.start_date,
                        end=subscription.end_date,
                    )
                    for subscription in subscriptions
                ],
            )
            obligations, lines = [], []
            for contract, subscription in zip(contracts, subscriptions, strict=True):
                contract.subscription = subscription
                periods = _periods(subscription)
                originals = [i for i in subscription.items.all() if i.change_id is None]
                revenue_start = subscription.trial_end_date or subscription.start_date
                mine = [
                    _obligation_for(contract, item, periods, revenue_start, book)
                    for item in originals
                ]
                mine = [o for o in mine if o is not None]
                fixed = [o for o in mine if o.kind != Kind.USAGE]
                if fixed:
                    price = exact_sum(o.fixed_consideration for o in fixed)
                    shares = allocate(price, [o.ssp for o in fixed], str(contract.currency))
                    for obligation, share in zip(fixed, shares, strict=True):
                        obligation.allocated_amount = share
                obligations += mine
            create_with_history(PerformanceObligation, obligations)
            for obligation in obligations:
                if obligation.kind == Kind.USAGE:
                    continue
                months: dict[dt.date, Decimal] = {}
                service = Period(obligation.service_start, obligation.service_end)
                for month, part in _parts(obligation, obligation.allocated_amount, service):
                    if part:  # _add_to_line: a line per month, gone if its parts sum to zero
                        key = month_start(month.start)
                        months[key] = months.get(key, ZERO) + part
                lines += [
                    (obligation.pk, month, amount) for month, amount in months.items() if amount
                ]
            insert_rows(RecognitionLine, ["obligation_id", "month", "amount"], lines)
    except IntegrityError:
        return sum(contract_create(subscription=s) is not None for s in subscriptions)
    return len(contracts)


def _originals():
    """The subscriptions that have their original contract (a subquery)."""
    return RevenueContract.objects.filter(renewal=None).values("subscription_id")


def _convention() -> str:
    return getattr(settings, "REVREC_CONVENTION", "daily")


def _periods(subscription: Subscription) -> list[TermPeriod]:
    """The term's billing periods as signed, billed from the trial's end: a cancellation cuts
    the schedule, but what the contract would have billed had it run on is priced on these."""
    trial_end = subscription.trial_end_date
    periods = []
    for p in billing_periods(
        subscription.start_date, subscription.term_months, subscription.billing_interval_months
    ):
        billed_from = max(p.start, trial_end) if trial_end else p.start
        if billed_from < p.end:
            periods.append(TermPeriod(p.start, p.end, billed_from, p.end))
    return periods


def signed_end(item: SubscriptionItem, subscription: Subscription) -> dt.date:
    """The end of an item version as its contract signed it: the term's end (changes are
    co-termed), or where a renewal ended it; a later change or cancellation is applied to it
    prospectively, not by cutting it."""
    if item.ends_on is not None and (
        item.ended_by_id is None or item.ended_by.kind == SubscriptionChange.Kind.RENEWAL
    ):
        return item.ends_on
    return subscription.term_end_date


@transaction.atomic
def contract_create(
    *, subscription: Subscription, renewal: SubscriptionChange | None = None
) -> RevenueContract | None:
    """The subscription's contract as signed (its original items), or a renewal's (the items
    the renewal started, for its term), allocated and scheduled. Returns None when another run
    made it first."""
    currency = str(subscription.currency)
    if renewal is None:
        quote = Quote.objects.filter(subscription=subscription).first()
        start = subscription.start_date
    else:
        quote = Quote.objects.filter(
            contract=subscription,
            kind=Quote.Kind.RENEWAL,
            status=Quote.Status.ACCEPTED,
            start_date=renewal.effective_date,
        ).first()
        start = renewal.effective_date
    try:
        with transaction.atomic():
            contract = RevenueContract.objects.create(
                subscription=subscription,
                renewal=renewal,
                quote=quote,
                customer=subscription.customer,
                currency=currency,
                start=start,
                end=subscription.end_date,
            )
    except IntegrityError:
        return None
    contract.end = term_end(contract)
    contract.save(update_fields=["end"])
    periods = _periods(subscription)
    items = subscription.items.order_by("position", "id")
    signed = items.filter(change=renewal) if renewal else items.filter(change=None)
    if renewal is None:
        revenue_start = subscription.trial_end_date or subscription.start_date
    else:
        revenue_start = renewal.effective_date
        # The term before ends where the renewal starts (its usage too).
        RevenueContract.objects.filter(
            subscription=subscription, start__lt=start, end__gt=start
        ).update(end=start)
    fixed: list[PerformanceObligation] = []
    for item in signed:
        obligation = _obligation_for(contract, item, periods, revenue_start)
        if obligation is None:
            continue
        obligation.save()
        if obligation.kind != Kind.USAGE:
            fixed.append(obligation)
    if fixed:
        price = exact_sum(o.fixed_consideration for o in fixed)
        shares = allocate(price, [o.ssp for o in fixed], currency)
        for obligation, share in zip(fixed, shares, strict=True):
            obligation.allocated_amount = share
            obligation.save(update_fields=["allocated_amount"])
            _schedule(obligation, share, Period(obligation.service_start, obligation.service_end))
    # The contract as signed: changes already made are applied next, prospectively, in order.
    return contract


def _obligation_for(
    contract: RevenueContract,
    item: SubscriptionItem,
    periods: list[TermPeriod],
    revenue_start: dt.date,
    book=None,
) -> PerformanceObligation | None:
    """The (unsaved) obligation of one item version, or None if it is never in service (`book`:
    see ssp_of)."""
    currency = str(contract.currency)
    start = max(item.starts_on or contract.start, revenue_start)
    end = signed_end(item, contract.subscription)
    if item.is_usage:  # usage runs to the contract's end (a cancellation), or its version's
        end = min(contract.end, end)
    if item.is_one_time:
        start = item.starts_on or revenue_start
        end = start + dt.timedelta(days=1)
    if end <= start:
        return None
    if item.is_usage:
        kind = Kind.USAGE
    elif item.is_one_time:
        kind = Kind.POINT_IN_TIME
    else:
        kind = Kind.RATABLE
    signed = signed_end(item, contract.subscription)
    fees = item_fees(item, periods, currency, until=signed)
    on = item.starts_on or contract.start
    return PerformanceObligation(
        contract=contract,
        kind=kind,
        item=item,
        charge=item.charge,
        position=item.position,
        description=item.name[:200],
        service_start=start,
        service_end=end,
        ssp=ZERO if item.is_usage else ssp_of(item, periods, currency, on, book, until=signed),
        fixed_consideration=fees,
        allocated_amount=fees if kind != Kind.USAGE and item.change_id else ZERO,
    )


def _schedule(obligation: PerformanceObligation, amount: Decimal, service: Period) -> None:
    """Lines for `amount` over `service`, merged into the obligation's unposted lines."""
    for month, part in _parts(obligation, amount, service):
        _add_to_line(obligation, month_start(month.start), part)


def _parts(
    obligation: PerformanceObligation, amount: Decimal, service: Period
) -> list[tuple[Period, Decimal]]:
    """`amount` over `service` by the obligation's kind: (a period, its part)."""
    currency = str(obligation.contract.currency)
    if obligation.kind == Kind.POINT_IN_TIME:
        return [(Period(service.start, service.start + dt.timedelta(days=1)), amount)]
    return spread(amount, service, currency, _convention())


def _add_to_line(obligation: PerformanceObligation, month: dt.date, amount: Decimal) -> None:
    if not amount:
        return
    line, created = RecognitionLine.objects.get_or_create(
        obligation=obligation, month=month, defaults={"amount": amount}
    )
    if not created:
        if line.entry_id:
            raise AssertionError(f"recognition line {line.pk} is posted: it cannot change")
        line.amount += amount
        line.save(update_fields=["amount"])
        if not line.amount:
            line.delete()


@transaction.atomic
def contract_apply_changes(*, contract: RevenueContract) -> int:
    """Apply the subscription's changes effective in the contract's term made since the last
    one applied, in order. Returns how many were applied."""
    contract = RevenueContract.objects.select_for_update().get(pk=contract.pk)
    subscription = contract.subscription
    changes = subscription.changes.filter(
        kind__in=APPLIED_CHANGES, effective_date__gte=contract.start
    )
    renewal = next_renewal(contract)
    if renewal is not None:
        changes = changes.filter(effective_date__lt=renewal)
    done = set(
        contract.obligations.exclude(last_change=None).values_list("last_change_id", flat=True)
    )
    latest = max(done, default=0)
    applied = 0
    for change in changes.order_by("pk"):
        if change.pk <= latest:
            continue
        _apply_change(contract, subscription, change)
        applied += 1
    if applied:
        contract.end = term_end(contract)
        contract.save(update_fields=["end"])
    return applied


def _apply_change(
    contract: RevenueContract, subscription: Subscription, change: SubscriptionChange
) -> None:
    """One change, prospectively, from its effective date, on every obligation it touches."""
    currency = str(contract.currency)
    periods = _periods(subscription)
    day = change.effective_date
    ended = {i.position: i for i in SubscriptionItem.objects.filter(ended_by=change)}
    added = {i.position: i for i in SubscriptionItem.objects.filter(change=change)}
    obligations = {o.position: o for o in contract.obligations.all()}
    for position in sorted(set(ended) | set(added)):
        obligation = obligations.get(position)
        old, new = ended.get(position), added.get(position)
        if obligation is None:
            if new is not None:  # an item the change adds: an obligation at its own fees
                created = _obligation_for(contract, new, periods, day)
                if created is not None:
                    created.last_change = change
                    created.save()
                    if created.kind != Kind.USAGE:
                        _schedule(
                            created,
                            created.allocated_amount,
                            Period(created.service_start, created.service_end),
                        )
            continue
        if obligation.kind == Kind.RATABLE:
            _modify(obligation, old, new, day, periods, currency)
        if new is not None:
            obligation.item = new
            obligation.charge = new.charge
            obligation.description = new.name[:200]
        obligation.last_change = change
        obligation.save()


def _modify(obligation, old, new, day, periods, currency) -> None:
    """The prospective change of a ratable obligation from `day`: allocation + the change's new
    consideration; the days before `day` keep what was scheduled for them; the remainder is
    spread over the service from `day` (or, if the service ends on `day`, recognized in its
    month). Posted lines never change: the remaining spread starts after the last posted month."""
    new_consideration = ZERO
    if old is not None:
        new_consideration -= item_fees(
            old, periods, currency, until=obligation.service_end, since=day
        )
    if new is not None:
        new_end = signed_end(new, obligation.contract.subscription)
        new_consideration += item_fees(new, periods, currency, until=new_end)
    else:
        new_end = day
    allocation = obligation.allocated_amount + new_consideration
    kept = _cut_schedule(obligation, day)
    last_posted = (
        obligation.lines.exclude(entry=None)
        .order_by("-month")
        .values_list("month", flat=True)
        .first()
    )
    start = max(day, obligation.service_start)
    if last_posted is not None:
        start = max(start, add_months(last_posted, 1))
    remainder = allocation - kept
    if start < new_end:
        _schedule(obligation, remainder, Period(start, new_end))
    else:  # the service ends on `day`: the rest goes to its last month (or the first unposted)
        target = month_start(max(day - dt.timedelta(days=1), obligation.service_start))
        if last_posted is not None and target <= last_posted:
            target = add_months(last_posted, 1)
        _add_to_line(obligation, target, remainder)
    obligation.allocated_amount = allocation
    obligation.fixed_consideration += new_consideration
    obligation.service_end = max(new_end, obligation.service_start + dt.timedelta(days=1))


def _cut_schedule(obligation: PerformanceObligation, day: dt.date) -> Decimal:
    """Keep what is scheduled for the days before `day` (posted lines whole, the month of `day`
    split by days), drop the rest; return what is kept."""
    currency = str(obligation.contract.currency)
    service = Period(obligation.service_start, obligation.service_end)
    kept = ZERO
    for line in list(obligation.lines.order_by("month")):
        if line.entry_id:
            kept += line.amount
            continue
        month = Period(line.month, add_months(line.month, 1))
        served = Period(max(month.start, service.start), min(month.end, service.end))
        if month.end <= day:
            kept += line.amount
            continue
        before = max((min(day, served.end) - served.start).days, 0)
        after = served.days - before
        if before and after:
            keep = split(line.amount, [before, after], currency)[0]
        elif before:
            keep = line.amount
        else:
            keep = ZERO
        if keep:
            line.amount = keep
            line.save(update_fields=["amount"])
            kept += keep
        else:
            line.delete()
    return kept


# --- credit notes -----------------------------------------------------------------------------

# A cancellation's credit note gives back what the cancellation took off: applied as the change.
CREDITED_LINES = (
    InvoiceLine.Kind.FEE,
    InvoiceLine.Kind.PRORATION,
    InvoiceLine.Kind.USAGE,
    InvoiceLine.Kind.TRUE_UP,
    InvoiceLine.Kind.ADJUSTMENT,
)


def credit_note_parts(note: CreditNote) -> list[tuple[InvoiceLine, Decimal]]:
    """What a credit note takes off each invoice line: its lines on an invoice line as they
    are; an amount on no line spread over the invoice's lines in proportion to their amounts
    (largest remainder, to the cent)."""
    parts: list[tuple[InvoiceLine, Decimal]] = []
    currency = str(note.currency)
    lines = [line for line in note.invoice.lines.all() if line.amount > 0 and line.item_id]
    for credit in note.lines.select_related("invoice_line"):
        if credit.invoice_line_id is not None:
            parts.append((credit.invoice_line, credit.amount))
        elif lines:
            shares = split(credit.amount, [line.amount for line in lines], currency)
            parts += [(line, share) for line, share in zip(lines, shares, strict=True) if share]
    return parts


@transaction.atomic
def contract_apply_credit_notes(*, contract: RevenueContract) -> int:
    """Apply the credit notes on the subscription's invoices issued since the last one applied,
    in order, to the obligations of the contract whose lines they credit: a change of the
    transaction price (ASC 606-10-32-42), so a ratable obligation's allocation goes down and
    its schedule is redone with a cumulative catch-up — what its days before the credit note
    would have recognized at the new allocation, less what they did, lands in the credit
    note's month (the first open one); the rest is spread over the remaining service. A point in
    time obligation takes it all in that month; usage takes it in the month the note is issued
    (_usage_months). Returns the notes applied."""
    contract = RevenueContract.objects.select_for_update().get(pk=contract.pk)
    notes = CreditNote.objects.filter(
        invoice__subscription_id=contract.subscription_id, change=None
    ).select_related("invoice")
    if contract.last_credit_note_id:
        notes = notes.filter(pk__gt=contract.last_credit_note_id)
    obligations = {o.position: o for o in contract.obligations.all()}
    end = term_end(contract)
    applied = 0
    for note in notes.order_by("pk"):
        for line, amount in credit_note_parts(note):
            if line.kind not in CREDITED_LINES or line.item is None:
                continue
            if not contract.start <= line.period_start < max(end, contract.end):
                continue  # another term's contract
            obligation = obligations.get(line.item.position)
            if obligation is None:
                continue
            _credit(obligation, amount, note.issue_date)
            obligation.credited_amount += amount
            obligation.save()
            applied += 1
        contract.last_credit_note = note
    contract.save(update_fields=["last_credit_note"])
    return applied


def _open_month(obligation: PerformanceObligation, month: dt.date) -> dt.date:
    """`month`, or the month after the obligation's last posted line if that is later."""
    last_posted = (
        obligation.lines.exclude(entry=None).order_by("-month").values_list("month", flat=True)
    ).first()
    return max(month, add_months(last_posted, 1)) if last_posted else month


def _credit(obligation: PerformanceObligation, amount: Decimal, day: dt.date) -> None:
    """Take `amount` off a fixed obligation's allocation on `day` (see
    contract_apply_credit_notes)."""
    if obligation.kind == Kind.USAGE:
        return  # _usage_months counts it in its month
    currency = str(obligation.contract.currency)
    allocation = obligation.allocated_amount - amount
    service = Period(obligation.service_start, obligation.service_end)
    month = _open_month(obligation, month_start(day))
    start = max(day, service.start, month)  # where the schedule can still change
    if obligation.kind == Kind.RATABLE and start < service.end:
        kept = _cut_schedule(obligation, start)
        target = recognized_before(allocation, service, start, currency, _convention())
        _schedule(obligation, allocation - target, Period(start, service.end))
    else:  # delivered, or served in full: all of it now
        kept = exact_sum(obligation.lines.values_list("amount", flat=True))
        target = allocation
    _add_to_line(obligation, month, target - kept)
    obligation.allocated_amount = allocation


# --- usage ------------------------------------------------------------------------------------


USAGE_LINES = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.TRUE_UP, InvoiceLine.Kind.ADJUSTMENT)
BILLED = (Invoice.Status.FINALIZED, Invoice.Status.PAID)
USAGE_BATCH = 5_000  # usage obligations read and written together (SQLite takes 32,766 ids)


def _by_days(months: dict, amount: Decimal, service: Period, through: dt.date, currency: str):
    """Add `amount` to `months`, split over the calendar months of `service` by days."""
    parts = calendar_months(service) or [Period(service.start, service.start)]
    amounts = split(amount, [p.days or 1 for p in parts], currency)
    for part, share in zip(parts, amounts, strict=True):
        if month_start(part.start) <= through:
            months[month_start(part.start)] += share


def _usage_months(
    obligations: list[PerformanceObligation], through: dt.date
) -> dict[int, dict[dt.date, Decimal]]:
    """The usage invoiced for each obligation's item (every version of it in its contract's
    term), by the month it occurred, up to the month starting `through`: the usage, minimum
    true-up and late-usage lines of finalized (or paid) invoices, less their share of the
    invoice's prepaid money credit (in proportion to the usage lines), a line spanning months
    split by days; then less the credit notes on those lines, in the month they are issued.
    Read for all the obligations at once (a fixed number of queries)."""
    end = add_months(through, 1)
    subscriptions = {o.contract.subscription_id for o in obligations}
    lines = (
        InvoiceLine.objects.filter(
            invoice__subscription_id__in=subscriptions,
            invoice__status__in=BILLED,
            period_start__lt=end,
        )
        .filter(Q(kind__in=USAGE_LINES) | Q(kind=InvoiceLine.Kind.CREDIT, item=None))
        .select_related("item", "invoice")
        .order_by("invoice_id", "position", "pk")
    )
    invoices: dict[int, dict[int, list[InvoiceLine]]] = defaultdict(lambda: defaultdict(list))
    for line in lines:
        invoices[line.invoice.subscription_id][line.invoice_id].append(line)
    notes: dict[int, list[tuple[dt.date, InvoiceLine, Decimal]]] = defaultdict(list)
    for note in (
        CreditNote.objects.filter(
            invoice__subscription_id__in=subscriptions, change=None, issue_date__lt=end
        )
        .select_related("invoice")
        .prefetch_related("lines__invoice_line__item", "invoice__lines__item")
    ):
        for line, amount in credit_note_parts(note):
            if line.kind in USAGE_LINES and line.item is not None:
                notes[note.invoice.subscription_id].append((note.issue_date, line, amount))
    result = {}
    for obligation in obligations:
        contract = obligation.contract
        currency = str(contract.currency)

        def mine(line, contract=contract, position=obligation.position) -> bool:
            return (
                line.item.position == position
                and contract.start <= line.period_start < contract.end
            )

        months: dict[dt.date, Decimal] = defaultdict(Decimal)
        for invoice_lines in invoices[contract.subscription_id].values():
            usage = [line for line in invoice_lines if line.kind != InvoiceLine.Kind.CREDIT]
            credit = exact_sum(x.amount for x in invoice_lines if x.kind == InvoiceLine.Kind.CREDIT)
            shares = [ZERO] * len(usage)
            if credit and usage:
                shares = split(credit, [max(line.amount, ZERO) for line in usage], currency)
            for line, share in zip(usage, shares, strict=True):
                if mine(line):
                    service = Period(line.period_start, line.period_end)
                    _by_days(months, line.amount + share, service, through, currency)
        for issued, line, amount in notes[contract.subscription_id]:
            if mine(line):
                months[month_start(issued)] -= amount
        result[obligation.pk] = months
    return result


def _usage_lines(obligations: list[PerformanceObligation], month: dt.date) -> None:
    """The usage recognized in `month` by each obligation: what was invoiced for the months up
    to it and the accruals of the month (usage not invoiced yet), less what earlier lines
    recognized (late invoices and the difference between an accrual and its invoice are caught
    up here). Not once this month or a later one is posted (its run caught up). A fixed number
    of queries for all of them."""
    lines: dict[int, list[RecognitionLine]] = defaultdict(list)
    for line in RecognitionLine.objects.filter(obligation__in=obligations):
        lines[line.obligation_id].append(line)
    open_ = [
        o
        for o in obligations
        if not any(line.entry_id and line.month >= month for line in lines[o.pk])
    ]
    accrued: dict[int, list[Decimal]] = defaultdict(list)
    for obligation_id, amount in UsageAccrual.objects.filter(
        obligation__in=open_, month=month
    ).values_list("obligation_id", "amount"):
        accrued[obligation_id].append(amount)
    invoiced = _usage_months(open_, month)
    drop, make, changed = [], [], []
    for obligation in open_:
        mine = lines[obligation.pk]
        due = exact_sum(invoiced[obligation.pk].values()) + exact_sum(accrued[obligation.pk])
        amount = due - exact_sum(line.amount for line in mine if line.month < month)
        kept = [line for line in mine if line.month != month]
        drop += [line.pk for line in mine if line.month == month]
        if amount:
            made = RecognitionLine(obligation=obligation, month=month, amount=amount)
            make.append(made)
            kept.append(made)
        allocated = exact_sum(line.amount for line in kept)
        if allocated != obligation.allocated_amount:
            obligation.allocated_amount = allocated
            changed.append(obligation)
    RecognitionLine.objects.filter(pk__in=drop).delete()
    RecognitionLine.objects.bulk_create(make)
    bulk_update_with_history(changed, PerformanceObligation, ["allocated_amount"])


def _accrue(obligations: list[PerformanceObligation], month: dt.date) -> None:
    """Usage recognized before it is invoiced: for each billing period of an obligation not
    invoiced yet by the end of `month`, its usage from its start to that end, rated on the
    item's terms (without a minimum true-up, known only at the period's end), accrued once
    (Dr Unbilled receivable / Cr Deferred revenue, dated the month's last day); the same
    period's accrual of an earlier month is reversed the same day (this one replaces it).
    What is invoiced, accrued or posted is read for all the obligations at once; only the
    periods left to accrue are rated, one subscription at a time."""
    month_end = add_months(month, 1)
    subscriptions = {o.contract.subscription_id for o in obligations}
    posted = set(
        RecognitionLine.objects.filter(obligation__in=obligations, month__gte=month)
        .exclude(entry=None)
        .values_list("obligation_id", flat=True)
    )
    invoiced = set(
        Invoice.objects.filter(
            subscription_id__in=subscriptions, status__in=BILLED, change=None
        ).values_list("subscription_id", "billing_date")
    )
    periods: dict[int, list] = defaultdict(list)
    for period in BillingPeriod.objects.filter(
        subscription_id__in=subscriptions, billed_from__lt=month_end
    ).order_by("start_date"):
        if (period.subscription_id, period.end_date) not in invoiced:
            periods[period.subscription_id].append(period)
    done = set(
        UsageAccrual.objects.filter(obligation__in=obligations, month=month).values_list(
            "obligation_id", "period_start"
        )
    )
    todo, requests = [], {}
    for obligation in obligations:
        contract = obligation.contract
        subscription = contract.subscription
        if obligation.pk in posted:
            continue
        for period in periods[subscription.pk]:
            window = Period(
                max(period.billed_from, obligation.service_start),
                min(period.end_date, month_end, obligation.service_end),
            )
            if window.start >= window.end or (obligation.pk, period.billed_from) in done:
                continue
            todo.append((obligation, period, window))
            requests[(subscription.pk, window)] = subscription
    # The usage of every window in one read (metering's batched aggregate), as billing reads it.
    rated = usage_for_periods(
        [(subscription, window) for (_, window), subscription in requests.items()]
    )
    for obligation, period, window in todo:
        usage = rated[(obligation.contract.subscription_id, window)]
        with transaction.atomic():
            _accrual_make(obligation, period, window, month, usage)


def _accrual_make(obligation, period, window: Period, month: dt.date, usage) -> None:
    """One accrual (see _accrue), the period's earlier one reversed."""
    contract = obligation.contract
    currency = str(contract.currency)
    last_day = add_months(month, 1) - dt.timedelta(days=1)
    amount = exact_sum(
        round_money(u.rating.amount - u.rating.true_up, currency)
        for u in usage
        if u.item.position == obligation.position
    )
    for earlier in obligation.accruals.filter(
        period_start=period.billed_from, month__lt=month, reversal=None
    ):
        accrual_reverse(accrual=earlier, on=last_day)
    accrual = UsageAccrual.objects.create(
        obligation=obligation,
        month=month,
        period_start=period.billed_from,
        period_end=period.end_date,
        amount=amount,
    )
    if not amount:
        return
    memo = (
        f"Usage accrued {window.start:%b %-d} – {window.end - dt.timedelta(days=1):%b %-d}"
        f", not invoiced yet: {obligation.description} ({contract.subscription.external_id})"
    )
    accrual.entry = post_entry(
        kind="usage_accrual",
        source=f"accrual:{accrual.pk}",
        on=last_day,
        memo=memo,
        currency=currency,
        lines=[
            Line(
                role=Account.Role.UNBILLED_RECEIVABLE,
                debit=amount,
                memo=memo,
                customer=contract.customer,
            ),
            Line(role=Account.Role.DEFERRED_REVENUE, credit=amount, memo=memo),
        ],
    )
    accrual.save(update_fields=["entry"])


def accrual_reverse(*, accrual: UsageAccrual, on: dt.date) -> JournalEntry | None:
    """Reverse an accrual once (its invoice is posted, or a later accrual replaces it): Dr
    Deferred revenue / Cr Unbilled receivable, on `on` (not before the accrual). An accrual of
    zero posted nothing and needs no reversal."""
    accrual = (
        UsageAccrual.objects.select_for_update(of=("self",))
        .select_related("entry")
        .get(pk=accrual.pk)
    )
    if accrual.reversal_id or accrual.entry_id is None:
        return accrual.reversal
    accrual.reversal = reverse_entry(
        entry=accrual.entry,
        on=max(on, accrual.entry.original_date),
        memo=f"Invoiced: {accrual.entry.memo}"[:300],
    )
    accrual.save(update_fields=["reversal"])
    return accrual.reversal


# --- the run ----------------------------------------------------------------------------------


def recognize(period: AccountingPeriod | dt.date) -> int:
    """Post every recognition line due by the end of `period` (a period or its month): usage
    not invoiced yet accrued first, then usage lines for the month computed from the invoices
    and the accruals. Idempotent; returns the number of lines posted. A fixed number of queries
    per batch of obligations and of lines (the accruals aside: each period left to accrue is
    rated on its own)."""
    month = month_start(period.start if isinstance(period, AccountingPeriod) else period)
    usage = list(
        PerformanceObligation.objects.filter(
            kind=Kind.USAGE, service_start__lt=add_months(month, 1)
        ).select_related("contract__subscription", "contract__customer")
    )
    for at in range(0, len(usage), USAGE_BATCH):
        batch = usage[at : at + USAGE_BATCH]
        _accrue(batch, month)
        with transaction.atomic():
            _usage_lines(batch, month)
    due = list(
        RecognitionLine.objects.filter(entry=None, month__lte=month)
        .order_by("month", "pk")
        .values_list("pk", flat=True)
    )
    for at in range(0, len(due), BATCH):
        _lines_post(due[at : at + BATCH])
    # The close checklist reads when the month's run last ran (a month with no entry has no
    # period yet: none is made for it here, periods close in order).
    AccountingPeriod.objects.filter(start=month).update(recognized_at=clock.now())
    return len(due)


@transaction.atomic
def _lines_post(pks: list[int]) -> None:
    """Post each of the lines once, locked and posted at once (ledger.post_entries): Dr
    Deferred revenue / Cr Revenue (the other way round for a negative line), dated the month's
    last day."""
    lines = list(
        RecognitionLine.objects.select_for_update(of=("self",))
        .filter(pk__in=pks, entry=None)
        .select_related("obligation__contract__subscription")
        .order_by("month", "pk")
    )
    post_entries([_line_entry(line) for line in lines])
    # Each line takes its entry (kind + source are unique): one UPDATE for the lot.
    entry = JournalEntry.objects.filter(
        kind="recognition",
        source=Concat(Value("recline:"), Cast(OuterRef("pk"), output_field=CharField())),
    )
    RecognitionLine.objects.filter(pk__in=[line.pk for line in lines]).update(
        entry=Subquery(entry.values("pk")[:1])
    )


def _line_entry(line: RecognitionLine) -> dict:
    """The line's entry (post_entry's arguments): Dr Deferred revenue / Cr Revenue (the other
    way round for a negative line), dated the month's last day."""
    obligation = line.obligation
    contract = obligation.contract
    amount = abs(line.amount)
    debit, credit = Account.Role.DEFERRED_REVENUE, Account.Role.REVENUE
    if line.amount < 0:
        debit, credit = credit, debit
    memo = (
        f"Revenue {line.month:%b %Y}: {obligation.description} "
        f"({contract.subscription.external_id})"
    )
    return dict(
        kind="recognition",
        source=f"recline:{line.pk}",
        on=add_months(line.month, 1) - dt.timedelta(days=1),
        memo=memo,
        currency=str(contract.currency),
        lines=[
            Line(role=debit, debit=amount, memo=memo),
            Line(role=credit, credit=amount, memo=memo),
        ],
    )
