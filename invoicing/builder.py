"""How the lines of one invoice are built: the one builder that prices a billing date.

`build_invoice_lines(...)` reads the subscription's contract, its metered usage and what was
already invoiced, and returns a `BuiltLines` value: the unsaved lines, in invoice order, and the
prepaid credit they draw. It writes nothing and changes none of the objects it is given (the
prepaid credits' balances are followed in a local ledger), so calling it twice gives the same
answer; `invoicing.services.invoice_create` saves the lines and records the draws.

One billing date holds, in this order:

1. Late usage (adjustment lines): for each earlier period still inside the lateness window, what
   its usage is worth now minus what was billed for it, re-rated on the whole period so tiers and
   minimums apply to the total. No line when the difference is 0.00.
2. Usage in arrears, per usage item of the period that ended: the quantity, at its stored precision
   (core.money.round_quantity), less prepaid units (never the free units), is rated (tiers, free
   units, cap); a minimum commitment is measured on all of the usage, prepaid units included.
3. Prepaid money pays the usage and true-up lines, oldest credit first (credit lines, negative).
4. Fixed fees in arrears of the period that ended, then fixed fees in advance of the period that
   starts; a prorated fee billed from inside its period (after a trial) costs its share of days.
   Each fee is rated with the terms in force at its period's start (a ramp's phase:
   `SubscriptionItem.terms_on`); the first billed period's fees in advance include the contract's
   one-time fees, which no later date bills.
5. Proration of contract changes inside the period that ended (`proration_lines`, placed between
   the fees in arrears and the fees in advance of step 4): the unused
   time of a version billed in advance credited, the remaining time of a version that started
   inside it charged, by days; a change invoiced at once gets an invoice of its own instead.

Every item is a version in force over [starts_on, ends_on): fees in advance bill the versions in
force on the period's billed start, fees in arrears and usage each version for its own days.

A line whose item has a list price other than its net price starts its explanation with a step
that says so ("list price $40.00 per seat, 10% discount: $36.00", see `discount_step`).

Rounding: every line is rounded once, half-up, to the currency's minor unit. A usage charge with
its minimum commitment is rated whole and rounded once: the usage line is the rounded usage, the
true-up line is the rounded charge minus the usage line, so the two always sum to the rounded
charge (7,505 × 0.001 = 7.505 with a 10.00 minimum: 7.51 + 2.49 = 10.00, not 7.51 + 2.50).
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from catalog import rating
from catalog.models import Charge
from catalog.pricing_display import pricing_summary
from core.formatting import format_price
from core.money import exact_sum, plain, round_money, round_quantity
from core.periods import Period
from invoicing.models import Invoice, InvoiceLine
from metering import selectors as usage_selectors
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionChange
from subscriptions.services import fixed_fees

ZERO = Decimal(0)


@dataclass(frozen=True)
class CreditDraw:
    """`amount` (units, or money) of `credit` pays for `line`."""

    credit: PrepaidCredit
    amount: Decimal
    line: InvoiceLine


@dataclass(frozen=True)
class BuiltLines:
    lines: list[InvoiceLine]  # unsaved, positions set, in invoice order
    draws: list[CreditDraw]


@dataclass(frozen=True)
class UsageCharge:
    """A period's usage charge of one item, rounded once and split into its two lines."""

    rating: rating.Rating  # of the billed units (after prepaid units), true-up included
    usage_amount: Decimal  # rounded usage line
    true_up_amount: Decimal  # rounded charge − usage line (≥ 0; no line when 0)
    charge: Decimal  # the period's charge, rounded once = usage_amount + true_up_amount


def split_minimum(
    usage_exact: Decimal, true_up_exact: Decimal, currency: str
) -> tuple[Decimal, Decimal]:
    """Round a usage charge and its true-up once: (usage line, true-up line), which sum to
    round(usage + true-up). Rounding half-up never decreases, so the true-up is never negative."""
    usage = round_money(usage_exact, currency)
    return usage, round_money(usage_exact + true_up_exact, currency) - usage


def charge_of(rated: rating.Rating, currency: str) -> UsageCharge:
    """The lines of a rated usage charge (its true-up part included), rounded once."""
    usage, true_up = split_minimum(rated.amount - rated.true_up, rated.true_up, currency)
    return UsageCharge(rated, usage, true_up, usage + true_up)


def rate_usage(
    pricing: dict, quantity: Decimal, prepaid_units: Decimal, currency: str
) -> UsageCharge:
    """Rate `quantity` of which `prepaid_units` are paid by credit (every model but percentage).

    The credited units cost nothing; the minimum commitment is still measured on the value of
    all of the usage: charge = rate(quantity − prepaid) + max(0, minimum − rate(quantity)).
    """
    whole = rating.rate(pricing, quantity)
    if not prepaid_units:
        return charge_of(whole, currency)
    billed = rating.rate(pricing, quantity - prepaid_units)
    steps = billed.steps[:-1] if billed.true_up else list(billed.steps)
    if whole.true_up:
        steps.append(whole.steps[-1])
    rated = rating.Rating(
        quantity=billed.quantity,
        amount=billed.amount - billed.true_up + whole.true_up,
        steps=steps,
        true_up=whole.true_up,
    )
    return charge_of(rated, currency)


class _Balances:
    """What is left on each prepaid credit while one invoice is built (a local ledger: the
    PrepaidCredit objects are read, never changed)."""

    def __init__(self, credits: Sequence[PrepaidCredit]):
        self.credits = list(credits)
        self.left = [credit.remaining for credit in self.credits]

    def take(self, index: int, wanted: Decimal) -> Decimal:
        taken = min(self.left[index], wanted)
        self.left[index] -= taken
        return taken


@dataclass
class BillingReads:
    """What the builder reads, loaded at once for a set of subscriptions: their items (the
    contract's versions, metric and changes loaded), the usage of the windows asked for, and what
    was invoiced already for the windows late usage may still reach. The billing run loads it for
    a chunk of subscriptions; an upcoming invoice or a shadow run, for one."""

    items: dict[int, list]  # subscription id → items, by position
    usage: dict[tuple[int, Period], list]  # (subscription id, window) → ItemUsage
    billed_lines: dict[int, list[tuple]]  # subscription id → (item, kind, q, amount, start, end)

    @classmethod
    def load(
        cls,
        wanted: dict[Subscription, tuple[list[Period], list[Period]]],
        *,
        live: bool = False,
    ) -> "BillingReads":
        """`wanted`: per subscription, (windows whose usage is billed, windows late usage may
        reach). A few queries, whatever the number of subscriptions."""
        from subscriptions.models import SubscriptionItem

        items: dict[int, list] = {subscription.pk: [] for subscription in wanted}
        versions = SubscriptionItem.objects.filter(subscription__in=list(wanted)).select_related(
            "metric", "change", "ended_by"
        )
        for item in versions.order_by("subscription", "position", "id"):
            items[item.subscription_id].append(item)
        requests = [
            (subscription, window)
            for subscription, (billed, late) in wanted.items()
            for window in {*billed, *late}
        ]
        usage = usage_selectors.usage_for_periods(requests, live=live, items=items)
        late = {
            subscription.pk: windows for subscription, (_, windows) in wanted.items() if windows
        }
        billed_lines: dict[int, list[tuple]] = {pk: [] for pk in late}
        if late:
            rows = (
                InvoiceLine.objects.filter(
                    invoice__subscription__in=list(late),
                    period_start__gte=min(w.start for ws in late.values() for w in ws),
                    period_end__lte=max(w.end for ws in late.values() for w in ws),
                    kind__in=_BILLED_KINDS,
                    item__isnull=False,
                )
                .exclude(invoice__status=Invoice.Status.VOID)  # a void invoice billed nothing
                .values_list(
                    "invoice__subscription",
                    "item",
                    "kind",
                    "quantity",
                    "amount",
                    "period_start",
                    "period_end",
                )
            )
            for subscription_id, *row in rows:
                billed_lines[subscription_id].append(tuple(row))
        return cls(items=items, usage=usage, billed_lines=billed_lines)


def reads_for(
    subscription: Subscription,
    arrears: BillingPeriod | None,
    billed_periods: Sequence[BillingPeriod] = (),
    live: bool = False,
) -> BillingReads:
    """The reads of one billing date of one subscription."""
    return BillingReads.load(
        {
            subscription: (
                [billed_window(arrears)] if arrears is not None else [],
                [billed_window(period) for period in billed_periods],
            )
        },
        live=live,
    )


def billed_window(period: BillingPeriod) -> Period:
    """What a period bills: from its start (or a trial's end) to its end."""
    return Period(period.billed_from, period.end_date)


def _line(
    kind, item, description, window: Period, quantity, amount, explanation=(), unit_price=None
) -> InvoiceLine:
    return InvoiceLine(
        kind=kind,
        item=item,
        description=description,
        period_start=window.start,
        period_end=window.end,
        quantity=quantity,
        unit_price=unit_price,
        amount=amount,
        explanation=list(explanation),
    )


def _unit_price(pricing: dict) -> Decimal | None:
    return rating.pricing_value(pricing, "unit_price", default=None)


def _discount_words(item, list_price: Decimal, net: Decimal, currency: str, per_unit: str) -> str:
    """How the net unit price comes from the list price, when the item's discount explains it."""
    percent, off = item.discount_percent, item.discount_amount
    after_percent = list_price * (100 - percent) / 100 if percent is not None else None
    if percent and after_percent == net:
        return f"{plain(percent)}% discount"
    if off and list_price - off == net:
        return f"{format_price(off, currency)} off{per_unit}"
    if percent and off and after_percent - off == net:
        return f"{plain(percent)}% discount and {format_price(off, currency)} off{per_unit}"
    return "negotiated price"


def discount_step(item, pricing: dict, currency: str) -> dict | None:
    """An explanation step that shows the list price beside the net one, in the customer's
    words: "list price $40.00 per seat, 10% discount: $36.00"; None without a discount.

    `pricing` is the net terms the line was rated with (the item's, or its ramp phase's).
    Terms without a unit price (tiers, packages) read as their summary, list then net."""
    list_pricing = item.list_pricing
    discounted = bool(item.discount_percent or item.discount_amount)
    if not list_pricing or (list_pricing == pricing and not discounted):
        return None
    list_price, net = _unit_price(list_pricing), _unit_price(pricing)
    if list_price is not None and net is not None:
        if list_price == net:
            return None
        fixed = rating.pricing_model(pricing, strict=False).fixed_fee
        unit = " per period" if fixed else f" per {item.unit_name or 'unit'}"
        words = _discount_words(item, list_price, net, currency, unit)
        return {
            "description": f"list price {format_price(list_price, currency)}{unit}, {words}: "
            f"{format_price(net, currency)}"
        }
    if list_pricing == pricing:
        return None
    return {
        "description": f"list price {pricing_summary(list_pricing, currency)}; contract price "
        f"{pricing_summary(pricing, currency)}"
    }


def _days(window: Period) -> str:
    last = window.end - dt.timedelta(days=1)
    return f"{window.start:%b %-d} – {last:%b %-d}"


def _fee_lines(subscription, items, period: BillingPeriod, timing: str) -> list[InvoiceLine]:
    priced = Period(period.start_date, period.priced_end)
    fees = fixed_fees(subscription, items, priced, period.billed_from, timing, period.end_date)
    lines = []
    for fee in fees:
        explanation = fee.rating.explanation()
        description = fee.item.name
        if fee.item.is_one_time:
            description += " (one-time fee)"
        if fee.fraction != 1:
            days, total_days = fee.window.days, priced.days
            description += f" (prorated {days}/{total_days} days)"
            explanation.append(
                {"description": f"prorated × {days}/{total_days} days ({_days(fee.window)})"}
            )
        discount = discount_step(fee.item, fee.pricing, subscription.currency)
        if discount:
            explanation.insert(0, discount)
        lines.append(
            _line(
                InvoiceLine.Kind.FEE,
                fee.item,
                description,
                fee.window,
                fee.quantity,
                fee.amount,
                explanation,
                _unit_price(fee.pricing),
            )
        )
    return lines


def _billed_with(change, wanted) -> bool:
    """Whether a version's proration belongs on this invoice: the change's own invoice
    (`wanted`), or, without one, the next invoice (every change not invoiced at once)."""
    if change is None or change.kind == change.Kind.CANCELLATION:
        return False  # a cancellation's unused time is credited by a credit note
    return change.pk == wanted.pk if wanted is not None else not change.invoice_now


def proration_lines(
    subscription, period: BillingPeriod, change=None, items=None
) -> list[InvoiceLine]:
    """What changes inside a period billed in advance cost, by days, the way Stripe prorates:

    - a version that ends inside the period was billed for the whole period: its unused time is
      credited at its price, amount × unused days / days in the period;
    - a version that starts inside the period was not billed for it: its remaining time (to its
      end, or the period's) is charged at its price, amount × days / days in the period;
    - a one-time fee added inside the period is charged whole.

    Each line is rounded once. With `change`, only that change's lines (its own invoice);
    otherwise the lines of every change not invoiced at once (the invoice closing the period).
    `items`: the subscription's items by position, their changes loaded (BillingReads; read
    here when not given).
    """
    if items is None:
        items = subscription.items.select_related("change", "ended_by").order_by("position", "id")
    priced = Period(period.start_date, period.priced_end)
    billed_from, end = period.billed_from, period.end_date
    currency = subscription.currency
    lines = []
    for item in items:
        if item.is_usage or item.billing_timing == Charge.Timing.IN_ARREARS:
            continue
        starts = item.starts_on is not None and billed_from < item.starts_on < end
        if item.is_one_time:
            if starts and _billed_with(item.change, change):
                pricing, quantity = item.terms_on(item.starts_on)
                rated = rating.rate(pricing, quantity)
                window = Period(item.starts_on, priced.end)
                lines.append(
                    _line(
                        InvoiceLine.Kind.PRORATION,
                        item,
                        f"{item.name} (one-time fee, {item.change.description})",
                        window,
                        quantity,
                        round_money(rated.amount, currency),
                        rated.explanation(),
                        _unit_price(pricing),
                    )
                )
            continue
        ends = item.ends_on is not None and billed_from < item.ends_on < end
        if ends and item.in_force(billed_from) and _billed_with(item.ended_by, change):
            lines.append(
                _proration_line(
                    item,
                    billed_from,
                    # To the period's end: a cancellation cuts it short, and the unused time
                    # after the cut is the cancellation's credit note (invoicing.cancellations).
                    Period(item.ends_on, end),
                    priced,
                    currency,
                    credit=True,
                )
            )
        if starts and _billed_with(item.change, change):
            until = min(item.ends_on or priced.end, priced.end)
            lines.append(
                _proration_line(
                    item,
                    item.starts_on,
                    Period(item.starts_on, until),
                    priced,
                    currency,
                    credit=False,
                )
            )
    return lines


def _proration_line(item, terms_day, window: Period, priced: Period, currency, *, credit):
    pricing, quantity = item.terms_on(terms_day)
    rated = rating.rate(pricing, quantity)
    amount = round_money(rated.amount * window.days / priced.days, currency)
    change = item.ended_by if credit else item.change
    what = "Unused time" if credit else "Remaining time"
    unit = f"{plain(quantity, grouping=True)} × " if quantity != 1 else ""
    explanation = [
        {
            "description": f"{change.get_kind_display()} from {window.start:%b %-d, %Y}: "
            f"{change.description}"
        }
    ]
    explanation += rated.explanation()
    explanation.append(
        {
            "description": f"× {window.days}/{priced.days} days ({_days(window)})"
            + (", credited" if credit else ""),
            "subtotal": str(-amount if credit else amount),
        }
    )
    return _line(
        InvoiceLine.Kind.PRORATION,
        item,
        f"{what} on {unit}{item.name} from {window.start:%b %-d}",
        window,
        quantity,
        -amount if credit else amount,
        explanation,
        _unit_price(pricing),
    )


def _true_up_explanation(pricing: dict, charge: UsageCharge, prepaid: bool) -> list[dict]:
    minimum = plain(Decimal(str(pricing["min_amount"])))
    on = " (measured on all of the usage, prepaid units included)" if prepaid else ""
    return [
        {
            "description": f"minimum commitment {minimum}{on}: the period's charge "
            f"{charge.charge}, rounded once, − {charge.usage_amount} on the "
            "usage line",
            "subtotal": str(charge.true_up_amount),
        }
    ]


def _usage_lines(
    subscription, period: BillingPeriod, balances: _Balances, reads: BillingReads
) -> tuple[list[InvoiceLine], list[CreditDraw]]:
    """Usage of the period: unit credits first reduce the quantity, a shortfall under a minimum
    commitment becomes its own true-up line (rounded together with the usage, see above)."""
    currency = subscription.currency
    lines, draws = [], []
    for usage in reads.usage[(subscription.pk, billed_window(period))]:
        item, quantity = usage.item, round_quantity(usage.quantity)
        pricing, window = usage.pricing, usage.window
        used: list[tuple[int, Decimal]] = []
        if rating.is_rated_on_amounts(pricing):  # rated from event amounts, no unit credits
            charge = charge_of(usage.rating, currency)
        else:
            free = rating.pricing_value(pricing, "free_units")
            billable = max(quantity - free, ZERO)  # free units are never paid by credit
            for index, credit in enumerate(balances.credits):
                if credit.metric_id == item.metric_id and billable > 0:
                    take = balances.take(index, billable)
                    if take > 0:
                        billable -= take
                        used.append((index, take))
            prepaid = exact_sum(take for _, take in used)
            charge = rate_usage(pricing, quantity, prepaid, currency)
        rated = charge.rating
        line = _line(
            InvoiceLine.Kind.USAGE,
            item,
            item.name,
            window,
            quantity,
            charge.usage_amount,
            rated.explanation()[:-1] if rated.true_up else rated.explanation(),
            _unit_price(pricing),
        )
        if used:
            taken = exact_sum(take for _, take in used)
            line.explanation.insert(
                0,
                {
                    "description": f"{plain(taken, grouping=True)} units from prepaid credit, "
                    f"{plain(quantity - taken, grouping=True)} billed"
                },
            )
            draws += [CreditDraw(balances.credits[index], take, line) for index, take in used]
        discount = discount_step(item, pricing, currency)
        if discount:
            line.explanation.insert(0, discount)
        lines.append(line)
        if charge.true_up_amount:
            lines.append(
                _line(
                    InvoiceLine.Kind.TRUE_UP,
                    item,
                    f"{item.name}: minimum commitment true-up",
                    window,
                    ZERO,
                    charge.true_up_amount,
                    _true_up_explanation(pricing, charge, bool(used)),
                )
            )
    return lines, draws


def _money_credit_lines(
    subscription, usage_lines: list[InvoiceLine], balances: _Balances, window: Period
) -> tuple[list[InvoiceLine], list[CreditDraw]]:
    """Money credits pay for usage (and true-ups) before anything is billed."""
    due = exact_sum(line.amount for line in usage_lines)
    lines, draws = [], []
    for index, credit in enumerate(balances.credits):
        if credit.metric_id is not None or due <= 0:
            continue
        take = balances.take(index, due)
        if take <= 0:
            continue
        due -= take
        line = _line(
            InvoiceLine.Kind.CREDIT,
            None,
            f"Prepaid credit applied ({plain(balances.left[index])} {subscription.currency} left)",
            window,
            ZERO,
            -take,
        )
        draws.append(CreditDraw(credit, take, line))
        lines.append(line)
    return lines, draws


_BILLED_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.TRUE_UP, InvoiceLine.Kind.ADJUSTMENT)


def _billed(
    subscription, window: Period, reads: BillingReads, unsaved: Sequence[InvoiceLine] = ()
) -> dict[int, tuple[Decimal, Decimal]]:
    """Per item, (quantity, amount) already invoiced for the window, summed exactly in Python.

    Quantity: usage and adjustment lines. Amount: those and the true-up lines (a true-up is part
    of the period's charge). `unsaved` are lines of invoices built before this one in a run that
    saves nothing (shadow billing): they count as invoiced."""
    billed: dict[int, tuple[Decimal, Decimal]] = {}
    rows = [
        (item, kind, quantity, amount)
        for item, kind, quantity, amount, start, end in reads.billed_lines.get(subscription.pk, ())
        if (start, end) == (window.start, window.end)
    ]
    rows += [
        (line.item_id, line.kind, line.quantity, line.amount)
        for line in unsaved
        if line.kind in _BILLED_KINDS
        and line.item_id is not None
        and (line.period_start, line.period_end) == (window.start, window.end)
    ]
    for item, kind, quantity, amount in rows:
        q, a = billed.get(item, (ZERO, ZERO))
        billed[item] = (q + (quantity if kind != InvoiceLine.Kind.TRUE_UP else ZERO), a + amount)
    return billed


def _late_usage_lines(
    subscription,
    billed_periods: Sequence[BillingPeriod],
    unsaved: Sequence[InvoiceLine],
    reads: BillingReads,
) -> list[InvoiceLine]:
    """Usage that arrived after its period was invoiced: the difference between what the period's
    usage is worth now and what was billed for it, as lines naming the original period.

    Quantities are compared at their stored precision (a time-weighted quantity has more digits
    than a line keeps), so the same usage never makes a line; a difference worth 0.00 makes none.
    """
    currency = subscription.currency
    lines = []
    for period in billed_periods:
        for usage in reads.usage[(subscription.pk, billed_window(period))]:
            item, pricing, window = usage.item, usage.pricing, usage.window
            billed = _billed(subscription, window, reads, unsaved)
            billed_quantity, billed_amount = billed.get(item.pk, (ZERO, ZERO))
            quantity = round_quantity(usage.quantity)
            if quantity == billed_quantity:
                continue
            if rating.is_rated_on_amounts(pricing):
                rated, now = usage.rating, usage.amount
            else:  # re-rate what was billed, so tiers and minimums apply to the whole period
                rated = rating.rate(pricing, quantity)
                now = round_money(rated.amount, currency)
                billed_amount = round_money(rating.rate(pricing, billed_quantity).amount, currency)
            if now == billed_amount:
                continue  # worth nothing more (free units, under the minimum, or no change)
            last_day = window.end - dt.timedelta(days=1)
            was, is_ = plain(billed_quantity, grouping=True), plain(quantity, grouping=True)
            lines.append(
                _line(
                    InvoiceLine.Kind.ADJUSTMENT,
                    item,
                    f"{item.name}: late usage for {window.start:%b %-d} – {last_day:%b %-d, %Y}",
                    window,
                    quantity - billed_quantity,
                    now - billed_amount,
                    [{"description": f"{was} billed before, {is_} now"}] + rated.explanation(),
                )
            )
    return lines


def build_invoice_lines(
    *,
    subscription: Subscription,
    advance: BillingPeriod | None,
    arrears: BillingPeriod | None,
    credits: Sequence[PrepaidCredit] = (),
    billed_periods: Sequence[BillingPeriod] = (),
    billed_lines: Sequence[InvoiceLine] = (),
    live: bool = False,
    change: SubscriptionChange | None = None,
    reads: BillingReads | None = None,
) -> BuiltLines:
    """The lines of one billing date (see the module docstring), unsaved, and the prepaid
    credit they draw from `credits` (whose `remaining` is the balance to draw from; the objects
    are not changed). `billed_periods` are earlier periods, already invoiced, that late usage may
    still reach; `billed_lines` are unsaved lines of earlier dates that count as invoiced too.
    `live` reads usage from the rollups kept at ingestion (metering's fast read, equal to the
    events' read: tested) rather than from the events; the billing run reads the events.
    With `change` (a contract change invoiced at once), the lines are its proration in the
    period `arrears` it falls in, and nothing else. `reads`: what the billing run loaded for
    many subscriptions at once; without it, this date's reads are loaded here (`reads_for`)."""
    if reads is None:
        reads = reads_for(subscription, None if change else arrears, billed_periods, live)
    items = reads.items[subscription.pk]
    if change is not None:
        lines = proration_lines(subscription, arrears, change, items)
        for position, line in enumerate(lines):
            line.position = position
        return BuiltLines(lines=lines, draws=[])
    balances = _Balances(credits)
    lines: list[InvoiceLine] = _late_usage_lines(subscription, billed_periods, billed_lines, reads)
    draws: list[CreditDraw] = []
    if arrears is not None:
        usage, unit_draws = _usage_lines(subscription, arrears, balances, reads)
        window = billed_window(arrears)
        paid, money_draws = _money_credit_lines(subscription, usage, balances, window)
        lines += usage + paid + _fee_lines(subscription, items, arrears, Charge.Timing.IN_ARREARS)
        lines += proration_lines(subscription, arrears, items=items)
        draws += unit_draws + money_draws
    if advance is not None:
        lines += _fee_lines(subscription, items, advance, Charge.Timing.IN_ADVANCE)
    for position, line in enumerate(lines):
        line.position = position
    return BuiltLines(lines=lines, draws=draws)


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal  # exact sum of the rounded lines
    tax_rate: Decimal  # percent
    tax_amount: Decimal  # on the rounded subtotal, rounded once
    total: Decimal  # subtotal + tax


def invoice_totals(lines: Sequence[InvoiceLine], *, tax_rate: Decimal, currency: str) -> Totals:
    """Tax is computed on the rounded subtotal and rounded once; total = subtotal + tax."""
    subtotal = exact_sum(line.amount for line in lines)
    tax_amount = round_money(subtotal * tax_rate / 100, currency)
    return Totals(subtotal, tax_rate, tax_amount, subtotal + tax_amount)


@dataclass(frozen=True)
class BuiltInvoice:
    invoice: Invoice  # unsaved: customer, subscription, billing date, currency and totals
    lines: list[InvoiceLine]  # unsaved, in invoice order
    draws: list[CreditDraw]


def build_invoice(
    *,
    subscription: Subscription,
    billing_date: dt.date,
    advance: BillingPeriod | None,
    arrears: BillingPeriod | None,
    credits: Sequence[PrepaidCredit] = (),
    billed_periods: Sequence[BillingPeriod] = (),
    billed_lines: Sequence[InvoiceLine] = (),
    live: bool = False,
    change: SubscriptionChange | None = None,
    reads: BillingReads | None = None,
) -> BuiltInvoice | None:
    """The whole invoice of one billing date, header and totals included, unsaved; None when the
    date has no lines. What the billing run saves, the upcoming invoice shows and a shadow run
    reports: one function, so the three cannot disagree."""
    built = build_invoice_lines(
        subscription=subscription,
        advance=advance,
        arrears=arrears,
        credits=credits,
        billed_periods=billed_periods,
        billed_lines=billed_lines,
        live=live,
        change=change,
        reads=reads,
    )
    if not built.lines:
        return None
    currency = str(subscription.currency)
    totals = invoice_totals(built.lines, tax_rate=subscription.customer.tax_rate, currency=currency)
    invoice = Invoice(
        customer=subscription.customer,
        subscription=subscription,
        billing_date=billing_date,
        change=change,
        currency=currency,
        subtotal=totals.subtotal,
        tax_rate=totals.tax_rate,
        tax_amount=totals.tax_amount,
        total=totals.total,
    )
    return BuiltInvoice(invoice=invoice, lines=built.lines, draws=built.draws)
