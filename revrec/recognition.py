"""Revenue contracts, performance obligations and the recognition run (ASC 606 / IFRS 15).

contracts_sync() gives every subscription, once, its revenue contract (linked to the accepted
quote it came from, if any) and one performance obligation per item of the contract:

- fixed fees over time (platform fee, seats, fixed fees in arrears): a series satisfied over
  time, RATABLE over its service period (the term, from the trial's end) by the convention of
  settings.REVREC_CONVENTION (daily by default);
- one-time fees (implementation, training): POINT_IN_TIME, recognized in the month they are
  billed from (the delivery date until the product records one);
- usage: variable consideration, USAGE, recognized as invoiced (the right-to-invoice practical
  expedient) in the month(s) the usage occurred.

Transaction price: the contract's fixed consideration, measured from the contract, not from
invoices — each fixed item's snapshotted net terms (discounts included) rated per billing period
and prorated by days exactly as billing prorates (`item_fees`), rounded once per period. That is
what the customer is committed to pay for the term, known on day one, and equal to what the
invoices bill for it (the schedule's advance amounts mix items and leave out fees in arrears, so
they cannot be allocated per obligation). It is allocated over the fixed obligations by relative
standalone selling price (`ssp_of`, swappable: the item's list price for the term until the SSP
price book lands) with revrec.allocation.allocate, and each allocation spread over its service
period with revrec.allocation.spread into RecognitionLines, one per obligation and month, which
sum to the allocation exactly. Usage is not allocated: each month's line is the usage invoiced
for it.

A contract change (quantity change, amendment, cancellation) is prospective: from its effective
date D, an obligation it changes gets new allocation = old allocation + the change's new
consideration (what the new version bills from D minus what the old one would have billed from D);
what was scheduled for the days before D stays, and the rest is spread over the remaining service
from D (a cancellation's remainder, the leftover of the SSP reallocation, is recognized in D's
month). An item a change adds is a new obligation at its own fees. Renewals are not handled here.

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
    DecimalField,
    Exists,
    OuterRef,
    Prefetch,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat

from catalog import rating
from core.money import exact_sum, round_money, split
from core.periods import Period, add_months, billing_periods, calendar_months, month_start
from invoicing.models import Invoice, InvoiceLine
from quotes.models import Quote
from revrec.allocation import allocate, spread
from revrec.bulk import create_with_history, insert_rows
from revrec.ledger import BATCH, Line, post_entries, post_entry
from revrec.models import (
    Account,
    AccountingPeriod,
    JournalEntry,
    PerformanceObligation,
    RecognitionLine,
    RevenueContract,
)
from subscriptions.models import Subscription, SubscriptionChange, SubscriptionItem

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
) -> Decimal:
    """What a fixed item's version bills over the term (net terms; with `list_price`, its list
    terms): each billing period's fee rated on the terms in force, prorated by days where the
    version covers only part of the period (billing's rule: a trial's cut period is billed
    whole unless the item is prorated), rounded once per period. A one-time fee counts once.
    `until` replaces the version's end (what it would have billed had it run on), `since` counts
    only the days from then."""
    if item.is_usage:
        return ZERO
    if item.is_one_time:
        return round_money(
            rating.rate(_pricing(item, item.pricing, list_price), item.quantity).amount, currency
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
        amount = rating.rate(_pricing(item, pricing, list_price), quantity).amount
        after_trial = window == Period(period.billed_from, priced.end) and lo > priced.start
        if window != priced and (item.prorated or not after_trial):
            amount = amount * window.days / priced.days
        total += round_money(amount, currency)
    return total


def _pricing(item: SubscriptionItem, net: dict, list_price: bool) -> dict:
    return (item.list_pricing or net) if list_price else net


def ssp_of(item: SubscriptionItem, periods: list[TermPeriod], currency: str) -> Decimal:
    """The standalone selling price of an item's obligation for the term. For now its list
    price (the catalog terms snapshotted at creation) over the term; the SSP price book will
    replace this one function."""
    return item_fees(item, periods, currency, list_price=True)


# --- contracts and obligations ----------------------------------------------------------------


def contracts_sync() -> int:
    """A revenue contract for every subscription without one, then the contract changes not
    applied yet. Idempotent; returns the number of contracts made. The new contracts are made
    BATCH at a time in a fixed number of queries (`_contracts_create`); only the contracts with
    a change not applied yet are looked at one by one."""
    made = 0
    new = list(
        Subscription.objects.filter(revenue_contract__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for at in range(0, len(new), BATCH):
        made += _contracts_create(new[at : at + BATCH])
    latest = PerformanceObligation.objects.filter(
        contract=OuterRef("pk"), last_change__isnull=False
    )
    latest = latest.order_by("-last_change_id").values("last_change_id")[:1]
    waiting = SubscriptionChange.objects.filter(
        subscription_id=OuterRef("subscription_id"),
        kind__in=APPLIED_CHANGES,
        pk__gt=OuterRef("applied_up_to"),
    )
    pending = (
        RevenueContract.objects.annotate(
            applied_up_to=Coalesce(Subquery(latest), 0, output_field=BigIntegerField())
        )
        .filter(Exists(waiting))
        .select_related("subscription")
    )
    for contract in pending:
        contract_apply_changes(contract=contract)
    return made


def _contracts_create(pks: list[int]) -> int:
    """contract_create for each of the subscriptions (those still without a contract), made at
    once: the same contracts, obligations, allocations and lines. If another run makes one of
    them meanwhile, falls back to contract_create one by one. Returns how many were made."""
    items = SubscriptionItem.objects.select_related("charge", "ended_by").order_by("position", "id")
    subscriptions = list(
        Subscription.objects.filter(pk__in=pks, revenue_contract__isnull=True)
        .select_related("customer")
        .prefetch_related(Prefetch("items", queryset=items))
        .order_by("pk")
    )
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
                    _obligation_for(contract, item, periods, revenue_start) for item in originals
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
def contract_create(*, subscription: Subscription) -> RevenueContract | None:
    """The subscription's contract as signed (its original items), allocated and scheduled.
    Returns None when another run made it first."""
    currency = str(subscription.currency)
    quote = Quote.objects.filter(subscription=subscription).first()
    try:
        with transaction.atomic():
            contract = RevenueContract.objects.create(
                subscription=subscription,
                quote=quote,
                customer=subscription.customer,
                currency=currency,
                start=subscription.start_date,
                end=subscription.end_date,
            )
    except IntegrityError:
        return None
    periods = _periods(subscription)
    originals = [i for i in subscription.items.order_by("position", "id") if i.change_id is None]
    revenue_start = subscription.trial_end_date or subscription.start_date
    fixed: list[PerformanceObligation] = []
    for item in originals:
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
) -> PerformanceObligation | None:
    """The (unsaved) obligation of one item version, or None if it is never in service."""
    currency = str(contract.currency)
    start = max(item.starts_on or contract.start, revenue_start)
    end = contract.end if item.is_usage else signed_end(item, contract.subscription)
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
    fees = item_fees(item, periods, currency, until=signed_end(item, contract.subscription))
    return PerformanceObligation(
        contract=contract,
        kind=kind,
        item=item,
        charge=item.charge,
        position=item.position,
        description=item.name[:200],
        service_start=start,
        service_end=end,
        ssp=ZERO if item.is_usage else ssp_of(item, periods, currency),
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
    """Apply the subscription's changes made since the last one applied, in order. Returns how
    many were applied."""
    contract = RevenueContract.objects.select_for_update().get(pk=contract.pk)
    subscription = contract.subscription
    changes = subscription.changes.filter(kind__in=APPLIED_CHANGES).order_by("pk")
    done = set(
        contract.obligations.exclude(last_change=None).values_list("last_change_id", flat=True)
    )
    latest = max(done, default=0)
    applied = 0
    for change in changes:
        if change.pk <= latest:
            continue
        _apply_change(contract, subscription, change)
        applied += 1
    if applied:
        contract.end = subscription.end_date
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


# --- usage ------------------------------------------------------------------------------------


def usage_by_month(obligation: PerformanceObligation, through: dt.date) -> dict[dt.date, Decimal]:
    """The usage invoiced for the obligation's item (every version of it), by the month it
    occurred, up to the month starting `through`: usage lines of finalized (or paid) invoices,
    a line spanning months split by days."""
    currency = str(obligation.contract.currency)
    lines = InvoiceLine.objects.filter(
        kind=InvoiceLine.Kind.USAGE,
        invoice__subscription_id=obligation.contract.subscription_id,
        invoice__status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID],
        item__position=obligation.position,
        period_start__lt=add_months(through, 1),
    )
    months: dict[dt.date, Decimal] = defaultdict(Decimal)
    for line in lines:
        parts = calendar_months(Period(line.period_start, line.period_end))
        amounts = split(line.amount, [p.days for p in parts], currency) if parts else []
        for part, amount in zip(parts, amounts, strict=True):
            if month_start(part.start) <= through:
                months[month_start(part.start)] += amount
    return months


def _usage_line(obligation: PerformanceObligation, month: dt.date) -> None:
    """The usage recognized in `month`: what was invoiced for the months up to it, less what
    earlier lines recognized (late invoices are caught up here). Not once a later month is
    posted (its run caught up)."""
    if obligation.lines.filter(month__gt=month).exclude(entry=None).exists():
        return
    if obligation.lines.filter(month=month).exclude(entry=None).exists():
        return
    due = exact_sum(usage_by_month(obligation, month).values())
    earlier = exact_sum(obligation.lines.filter(month__lt=month).values_list("amount", flat=True))
    amount = due - earlier
    obligation.lines.filter(month=month).delete()
    if amount:
        RecognitionLine.objects.create(obligation=obligation, month=month, amount=amount)
    obligation.allocated_amount = exact_sum(obligation.lines.values_list("amount", flat=True))
    obligation.save(update_fields=["allocated_amount"])


# --- the run ----------------------------------------------------------------------------------


def recognize(period: AccountingPeriod | dt.date) -> int:
    """Post every recognition line due by the end of `period` (a period or its month): usage
    lines for the month first computed from the invoices. Idempotent; returns the number of
    lines posted. A fixed number of queries per BATCH of obligations and of lines."""
    month = month_start(period.start if isinstance(period, AccountingPeriod) else period)
    usage = PerformanceObligation.objects.filter(
        kind=Kind.USAGE, service_start__lt=add_months(month, 1)
    ).select_related("contract")
    batch = []
    for obligation in usage.iterator(chunk_size=BATCH):
        batch.append(obligation)
        if len(batch) == BATCH:
            _usage_lines(batch, month)
            batch = []
    if batch:
        _usage_lines(batch, month)
    due = list(
        RecognitionLine.objects.filter(entry=None, month__lte=month)
        .order_by("month", "pk")
        .values_list("pk", flat=True)
    )
    for at in range(0, len(due), BATCH):
        _lines_post(due[at : at + BATCH])
    return len(due)


@transaction.atomic
def _usage_lines(obligations: list[PerformanceObligation], month: dt.date) -> None:
    """_usage_line for each of the obligations, read and written in a fixed number of queries:
    the same figures (usage_by_month's arithmetic on the invoices' usage lines read at once)."""
    through = add_months(month, 1)
    lines: dict[int, list[RecognitionLine]] = defaultdict(list)
    for line in RecognitionLine.objects.filter(obligation__in=obligations):
        lines[line.obligation_id].append(line)
    invoiced: dict[tuple[int, int], list] = defaultdict(list)
    for row in InvoiceLine.objects.filter(
        kind=InvoiceLine.Kind.USAGE,
        invoice__subscription_id__in={o.contract.subscription_id for o in obligations},
        invoice__status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID],
        item__isnull=False,
        period_start__lt=through,
    ).values_list("invoice__subscription_id", "item__position", "period_start", "period_end",
                  "amount"):  # fmt: skip
        invoiced[row[0], row[1]].append(row[2:])
    drop, make, changed = [], [], []
    for obligation in obligations:
        mine = lines[obligation.pk]
        if any(line.entry_id and line.month >= month for line in mine):
            continue  # this month or a later one is posted: its run caught up
        currency = str(obligation.contract.currency)
        months: dict[dt.date, Decimal] = defaultdict(Decimal)
        key = (obligation.contract.subscription_id, obligation.position)
        for start, end, amount in invoiced[key]:
            parts = calendar_months(Period(start, end))
            amounts = split(amount, [p.days for p in parts], currency) if parts else []
            for part, share in zip(parts, amounts, strict=True):
                if month_start(part.start) <= month:
                    months[month_start(part.start)] += share
        due = exact_sum(months.values())
        earlier = exact_sum(line.amount for line in mine if line.month < month)
        amount = due - earlier
        kept = [line for line in mine if line.month != month]
        drop += [line.pk for line in mine if line.month == month]
        if amount:
            make.append((obligation.pk, month, amount))
        obligation.allocated_amount = exact_sum(line.amount for line in kept) + amount
        changed.append(obligation)
    RecognitionLine.objects.filter(pk__in=drop).delete()
    insert_rows(RecognitionLine, ["obligation_id", "month", "amount"], make)
    # allocated_amount = the sum of the obligation's lines, as computed above: one UPDATE, and
    # the history rows its save() would have written.
    total = (
        RecognitionLine.objects.filter(obligation=OuterRef("pk"))
        .order_by()
        .values("obligation")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    PerformanceObligation.objects.filter(pk__in=[o.pk for o in changed]).update(
        allocated_amount=Coalesce(Subquery(total), ZERO, output_field=DecimalField())
    )
    PerformanceObligation.history.bulk_history_create(changed, update=True)


@transaction.atomic
def _lines_post(pks: list[int]) -> None:
    """line_post for each of the lines, locked and posted at once (ledger.post_entries)."""
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


def line_post(*, line: RecognitionLine) -> RecognitionLine:
    """Post one line once: Dr Deferred revenue / Cr Revenue (the other way round for a
    negative line), dated the month's last day."""
    line = RecognitionLine.objects.select_for_update().get(pk=line.pk)
    if line.entry_id:
        return line
    entry = post_entry(**_line_entry(line))
    line.entry = entry
    line.save(update_fields=["entry"])
    return line
