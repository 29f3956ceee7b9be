"""Amendments of a live subscription through a quote, co-termed.

An amendment quote (kind AMENDMENT, `contract` = the subscription) starts as the contract in force
on its effective date: one line per version in force (`QuoteLine.replaces`), its charge, quantity
and negotiated terms restated (unit price, discount, tiers, the ramp phases still to come). The
rep edits it like any quote (approval rules, sending, signing); at acceptance each line is
compared with the version it restates:

- same net terms, quantity and phases: nothing changes;
- different: the version ends on the effective date and the line's terms start there;
- a version in force with no line: it ends there (removed); a line without `replaces`: a new item.

`subscriptions.changes.subscription_change` applies that in one transaction, refusing a quote
drafted on a revision that is no longer the contract's (a concurrent change won). Another plan on
the quote is an upgrade or downgrade: its lines come from the new plan, the old plan's items end.

Months of an amendment quote (its term, its ramp phases) count from the start of the billing
period in progress on the effective date: the term is the periods left to the term's end, so the
quote's totals compute; month 1 of a phase starts on the effective date itself.
"""

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

from django.db import transaction

from catalog import rating
from core import clock
from core.errors import Conflict, ValidationError
from core.periods import add_months
from quotes import pricing
from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier
from quotes.totals import NO_EXTRAS, LineExtras
from subscriptions.changes import (
    ItemChange,
    check_change_date,
    item_spec_of,
    items_in_force,
    subscription_change,
)
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem
from subscriptions.services import ItemSpec

ZERO = Decimal(0)
HUNDRED = Decimal(100)
VALID_DAYS = 30  # an amendment quote is valid this long, like a quote the rep makes


class LineStatus:
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    NEW = "new"
    REMOVED = "removed"


# -- the billing periods an amendment's months count in -----------------------------------------


def _periods(subscription: Subscription, day: dt.date) -> list[BillingPeriod]:
    """The schedule's periods from the one in progress on `day` to the term's end."""
    return list(
        BillingPeriod.objects.filter(subscription=subscription, end_date__gt=day).order_by(
            "sequence"
        )
    )


def _month_start(periods, interval: int, month: int, day: dt.date) -> dt.date:
    """The first day of month `month` (1-based) of an amendment from `day`."""
    index, offset = divmod(month - 1, interval)
    if index < len(periods) and not offset:
        return max(periods[index].start_date, day)

    return max(add_months(periods[0].start_date, month - 1), day)


def _month_end(periods, interval: int, month: int) -> dt.date:
    """The day after month `month` (1-based) of an amendment ends."""
    index, offset = divmod(month, interval)
    if 0 < index <= len(periods) and not offset:
        return periods[index - 1].end_date

    return add_months(periods[0].start_date, month)


def _month_of(periods, interval: int, date: dt.date, *, end: bool) -> int | None:
    """The month (1-based) a phase starting (or ending, the day after) on `date` begins (ends)
    with, when `date` is a period's bound; None otherwise."""
    for index, period in enumerate(periods):
        if not end and (period.start_date == date or period.start_date < date < period.end_date):
            return index * interval + 1 if index == 0 or period.start_date == date else None
        if end and period.end_date == date:
            return (index + 1) * interval
    return None


# -- the contract in force, as quote lines ------------------------------------------------------


def _plain(value):
    """Pricing terms compared by value: numbers as Decimals, empty keys dropped."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    try:
        return Decimal(str(value)).normalize()
    except ArithmeticError:
        return value


def same_pricing(a: dict | None, b: dict | None) -> bool:
    return _plain(a or {}) == _plain(b or {})


def _factor(line: QuoteLine) -> Decimal:
    """Plan intervals per billing period, by which a fixed fee's prices are scaled (a usage
    line's prices stay per billing period: quotes.pricing)."""
    if pricing.is_usage(line):
        return Decimal(1)
    quote = line.quote
    return Decimal(max(quote.interval // quote.plan.billing_interval_months, 1))


def _undiscounted(net: Decimal, line: QuoteLine, percent) -> Decimal | None:
    """The price before the line's discounts that nets `net` per billing period."""
    keep = (HUNDRED - percent) / HUNDRED if percent else Decimal(1)
    if not keep:
        return None
    return (net / _factor(line) + (line.discount_amount or ZERO)) / keep


def _tiers(pricing_terms: dict, divisor: Decimal) -> list[dict]:
    return [
        {
            **tier,
            "unit_price": pricing.price(rating.pricing_value(tier, "unit_price") / divisor),
            "flat_fee": pricing.price(rating.pricing_value(tier, "flat_fee") / divisor),
        }
        for tier in pricing_terms.get("tiers") or []
    ]


def _restate_terms(line: QuoteLine, item: SubscriptionItem, quote: Quote) -> list[dict]:
    """Set the line's price and discount so that its net terms are the version's; return the
    negotiated tiers it needs (none when the catalog's apply)."""
    target = item.pricing
    model = rating.pricing_model(target, strict=False)
    if line.kind == QuoteLine.Kind.USAGE and target.get("min_amount") is not None:
        listed = pricing.period_list_pricing(line).get("min_amount")
        if not same_pricing({"m": listed}, {"m": target["min_amount"]}):
            line.minimum_amount = Decimal(str(target["min_amount"])) / quote.interval
    if same_pricing(pricing.net_pricing(line), target):
        return []
    percent = line.discount_percent
    if model.unit_price and target.get("unit_price") is not None:
        unit = _undiscounted(Decimal(str(target["unit_price"])), line, percent)
        if unit is not None:
            line.unit_price = Decimal(pricing.price(unit))
            if same_pricing(pricing.net_pricing(line), target):
                return []
    if model.tiered:
        keep = (HUNDRED - percent) / HUNDRED if percent else Decimal(1)
        if keep:
            tiers = _tiers(target, keep * _factor(line))
            if same_pricing(pricing.net_pricing(line, tiers=tiers), target):
                return tiers
    # Not expressible as list price less the discount: the net price itself, no discount.
    line.discount_percent = line.discount_amount = None
    tiers = _tiers(target, _factor(line)) if model.tiered else []
    if model.unit_price and target.get("unit_price") is not None:
        net = Decimal(str(target["unit_price"]))
        line.unit_price = Decimal(pricing.price(net / _factor(line)))
    return tiers


def _restate_phases(line, item, quote, periods) -> list[QuoteLinePhase]:
    """The ramp's phases still to come from the effective date, in the amendment's months."""
    day, interval = quote.effective_date, quote.interval
    phases = []
    for phase in item_spec_of(item, on=day).phases:
        start = _month_of(periods, interval, phase.start, end=False)
        end = _month_of(periods, interval, phase.end, end=True)
        if start is None or end is None:
            continue  # shown as the item's own terms; the rep restates the ramp
        row = QuoteLinePhase(start_month=start, end_month=end, quantity=phase.quantity)
        terms = pricing.Phase(start, end, phase.quantity)
        if not same_pricing(pricing.net_pricing(line, phase=terms), phase.pricing):
            net = rating.pricing_value(phase.pricing, "unit_price", None)
            if net is not None:
                unit = _undiscounted(net, line, line.discount_percent)
                if unit is None:
                    row.discount_percent, unit = ZERO, _undiscounted(net, line, None)
                row.unit_price = Decimal(pricing.price(unit))
        phases.append(row)
    return phases


def _term_months(subscription: Subscription, periods) -> int:
    return max(len(periods), 1) * subscription.billing_interval_months


@transaction.atomic
def quote_amendment_create(
    *, subscription: Subscription, by=None, effective_date: dt.date | None = None
) -> Quote:
    """A draft amendment quote of a live subscription from `effective_date` (default: today),
    its lines the contract in force on that day (see the module)."""
    subscription = Subscription.objects.select_related("customer", "plan").get(pk=subscription.pk)
    if subscription.status != Subscription.Status.ACTIVE or subscription.canceled_on:
        raise Conflict(
            f"Subscription {subscription.external_id} is "
            f"{subscription.get_status_display().lower()}: only a live subscription is amended."
        )
    today = clock.today()
    day = effective_date or today
    check_change_date(subscription, day, today)  # the messages subscription_change would give
    periods = _periods(subscription, day)
    quote = Quote.objects.create(
        kind=Quote.Kind.AMENDMENT,
        contract=subscription,
        customer=subscription.customer,
        plan=subscription.plan,
        owner=by if by is not None and getattr(by, "is_authenticated", False) else None,
        title=f"Amendment of {subscription.external_id}",
        start_date=day,
        effective_date=day,
        base_revision=subscription.revision,
        billing_interval_months=subscription.billing_interval_months,
        payment_terms_days=subscription.payment_terms_days,
        term_months=_term_months(subscription, periods),
        valid_until=today + dt.timedelta(days=VALID_DAYS),
    )
    _restate_contract(quote, periods)
    return quote


def _restate_contract(quote: Quote, periods) -> None:
    """One line per version in force on the effective date, its terms restated."""
    for item in items_in_force(quote.contract, quote.effective_date):
        line = QuoteLine(
            quote=quote,
            kind=QuoteLine.Kind.USAGE if item.is_usage else QuoteLine.Kind.RECURRING,
            charge=item.charge,
            description=item.name,
            quantity=item.quantity,
            discount_percent=item.discount_percent,
            discount_amount=item.discount_amount,
            position=item.position,
            replaces=item,
        )
        if item.charge_id is None:
            continue  # not a catalog charge (cannot be restated by a line)
        tiers = _restate_terms(line, item, quote)
        phases = _restate_phases(line, item, quote, periods) if item.phases else []
        line.save()
        QuoteLineTier.objects.bulk_create(
            QuoteLineTier(
                line=line,
                up_to=None if tier.get("up_to") is None else Decimal(str(tier["up_to"])),
                unit_price=Decimal(str(tier["unit_price"])),
                flat_fee=Decimal(str(tier.get("flat_fee") or 0)),
                position=position,
            )
            for position, tier in enumerate(tiers)
        )
        for phase in phases:
            phase.line = line
            phase.save()


@transaction.atomic
def amendment_populate_lines(*, quote: Quote) -> Quote:
    """A draft amendment's lines after a change of plan: another plan's charges at catalog
    prices (an upgrade or downgrade: the old plan's items end), or, back on the contract's plan,
    the contract in force again."""
    from quotes.services import quote_populate_lines

    if quote.status != Quote.Status.DRAFT:
        return quote
    if quote.plan_id != quote.contract.plan_id:
        return quote_populate_lines(quote=quote, replace=True)
    quote.lines.all().delete()
    _restate_contract(quote, _periods(quote.contract, quote.effective_date))
    return quote


# -- acceptance: the lines against the contract in force ----------------------------------------


@dataclass(frozen=True)
class AmendmentPlan:
    """What accepting the amendment changes: the ItemChanges, and each line's status."""

    changes: list[ItemChange]
    status: dict[int, str]  # line pk → LineStatus
    removed: list[SubscriptionItem]


def _specs(quote: Quote, lines, extras, periods) -> dict[int, ItemSpec]:
    """Each line's item terms (services.item_specs), phases dated in the amendment's months."""
    from quotes.services import item_specs

    items, _credits = item_specs(quote, lines, extras)
    interval, day = quote.interval, quote.effective_date
    specs = {}
    for line, spec in zip(lines, items, strict=True):
        line_phases = extras.get(line.pk, NO_EXTRAS).phases
        if line_phases:
            spec = replace(
                spec,
                phases=[
                    replace(
                        built,
                        start=_month_start(periods, interval, phase.start_month, day),
                        end=_month_end(periods, interval, phase.end_month),
                    )
                    for phase, built in zip(line_phases, spec.phases, strict=True)
                ],
            )
        specs[line.pk] = spec
    return specs


def _same_phases(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(
        x.start == y.start
        and x.end == y.end
        and x.quantity == y.quantity
        and same_pricing(x.pricing, y.pricing)
        for x, y in zip(a, b, strict=True)
    )


def _unchanged(spec: ItemSpec, item: SubscriptionItem, day: dt.date) -> bool:
    current: ItemSpec = item_spec_of(item, on=day)
    return (
        spec.charge is not None
        and spec.charge.pk == item.charge_id
        and spec.quantity == current.quantity
        and same_pricing(spec.pricing, current.pricing)
        and _same_phases(list(spec.phases), list(current.phases))
    )


def amendment_plan(quote: Quote, lines: list[QuoteLine], extras: dict[int, LineExtras]):
    """Compare the quote's lines with the contract in force on its effective date."""
    subscription, day = quote.contract, quote.effective_date
    periods = _periods(subscription, day)
    specs = _specs(quote, lines, extras, periods)
    in_force = {item.pk: item for item in items_in_force(subscription, day)}
    changes, status, restated = [], {}, set()
    for line in lines:
        spec = specs[line.pk]
        item = in_force.get(line.replaces_id) if line.replaces_id else None
        if item is None:
            changes.append(ItemChange(None, spec))
            status[line.pk] = LineStatus.NEW
            continue
        restated.add(item.pk)
        if _unchanged(spec, item, day):
            status[line.pk] = LineStatus.UNCHANGED
        else:
            changes.append(ItemChange(item, spec))
            status[line.pk] = LineStatus.CHANGED
    removed = [item for pk, item in in_force.items() if pk not in restated]
    changes += [ItemChange(item, None) for item in removed]
    return AmendmentPlan(changes, status, removed)


def amendment_apply(*, quote: Quote, lines, extras, by=None):
    """Apply an accepted amendment quote to its contract (inside quote_accept's transaction)."""
    if not quote.contract_id or quote.effective_date is None:
        raise ValidationError(
            f"Quote {quote.number} is an amendment without the subscription it amends or its "
            "effective date: amend the subscription from its page."
        )
    if any(line.kind == QuoteLine.Kind.CREDIT for line in lines):
        raise ValidationError(
            f"Quote {quote.number} amends {quote.contract.external_id}: prepaid credits are "
            "granted on the subscription's page, not by an amendment; remove the credit line."
        )
    plan = amendment_plan(quote, lines, extras)
    return subscription_change(
        subscription=quote.contract,
        effective_date=quote.effective_date,
        changes=plan.changes,
        plan=quote.plan,
        source=quote.number,
        by=by,
        invoice_now=quote.invoice_now,
        expected_revision=quote.base_revision,
    )
