"""A quote's figures: per line and in total, by the rating engine and the money rules.

Every amount is what an invoice would bill: a line's charge per billing period is rated on its
net terms (quotes.pricing) and rounded once, half-up, to the currency's minor unit; totals are
exact sums of those rounded amounts. Definitions (docs/quotes.md has a worked example):

- MRR (month 1, at full ramp): the recurring fees of the first (last) billing period, per month.
  ARR: 12 × MRR at full ramp.
- Committed: recurring fees over the term + usage minimum commitments over the term + one-time
  fees + prepaid credits. TCV is the committed total; ACV is the committed total without one-time
  fees, per year of the term; first-year total: what the first 12 months commit.
- Estimated usage: what the usage lines' estimated monthly quantities would cost beyond their
  commitments, over the term (usage is billed as measured: this is a forecast, never committed).
- List: the same figures at catalog prices (no negotiated price or tiers, no discount); the total
  discount is list − net over committed and estimated amounts.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from catalog import rating
from core.money import exact_sum, plain, round_money
from quotes import pricing
from quotes.models import QuoteLine, QuoteLinePhase, QuoteLineTier

ZERO = Decimal(0)
TWELVE = Decimal(12)


@dataclass
class LineFigures:
    line: QuoteLine
    net_first: Decimal = ZERO  # per billing period, first period (one-time: the fee)
    list_first: Decimal = ZERO
    net_last: Decimal = ZERO  # per billing period, last period (full ramp)
    committed: Decimal = ZERO  # over the term
    estimated: Decimal = ZERO  # over the term, beyond the commitment (usage)
    list_total: Decimal = ZERO  # committed + estimated at list prices
    net_total: Decimal = ZERO  # committed + estimated

    @property
    def discount(self) -> Decimal:
        return self.list_total - self.net_total

    @property
    def discount_percent(self) -> Decimal:
        """The line's effective discount against list (its stated one when nothing is estimated)."""
        stated = self.line.discount_percent or ZERO
        if not self.list_total:
            return stated
        return max(stated, self.discount * 100 / self.list_total)


@dataclass
class QuoteTotals:
    currency: str
    months: int  # per billing period
    periods: int
    lines: list[LineFigures] = field(default_factory=list)
    mrr_first: Decimal = ZERO
    mrr_full: Decimal = ZERO
    arr: Decimal = ZERO
    recurring: Decimal = ZERO  # committed recurring fees over the term
    commitments: Decimal = ZERO  # usage minimums over the term
    one_time: Decimal = ZERO
    credits: Decimal = ZERO
    first_year: Decimal = ZERO
    tcv: Decimal = ZERO
    acv: Decimal = ZERO
    estimated_usage: Decimal = ZERO
    list_total: Decimal = ZERO
    net_total: Decimal = ZERO  # tcv + estimated usage

    @property
    def discount(self) -> Decimal:
        return self.list_total - self.net_total

    @property
    def discount_percent(self) -> Decimal:
        return self.discount * 100 / self.list_total if self.list_total else ZERO


def tiers_as_pricing(tiers) -> list[dict]:
    """Negotiated tiers in the rating engine's shape: each starts where the previous ends."""
    rows, lower = [], ZERO
    for tier in tiers:
        rows.append(
            {
                "from": plain(lower),
                "up_to": None if tier.up_to is None else plain(tier.up_to),
                "unit_price": plain(tier.unit_price),
                "flat_fee": plain(tier.flat_fee),
            }
        )
        lower = tier.up_to if tier.up_to is not None else lower
    return rows


def phases_of(phases) -> list[pricing.Phase]:
    return [
        pricing.Phase(p.start_month, p.end_month, p.quantity, p.unit_price, p.discount_percent)
        for p in sorted(phases, key=lambda p: p.start_month)
    ]


@dataclass(frozen=True)
class LineExtras:
    tiers: list[dict]
    phases: list[pricing.Phase]


def read_extras(lines) -> dict[int, LineExtras]:
    """The negotiated tiers and ramp phases of saved lines, in two queries whatever their number."""
    ids = [line.pk for line in lines if line.pk]
    tiers, phases = defaultdict(list), defaultdict(list)
    for tier in QuoteLineTier.objects.filter(line_id__in=ids).order_by("position", "id"):
        tiers[tier.line_id].append(tier)
    for phase in QuoteLinePhase.objects.filter(line_id__in=ids):
        phases[phase.line_id].append(phase)
    return {pk: LineExtras(tiers_as_pricing(tiers[pk]), phases_of(phases[pk])) for pk in set(ids)}


NO_EXTRAS = LineExtras([], [])


def _rated(terms: dict, quantity: Decimal, currency: str) -> Decimal:
    return round_money(rating.rate(terms, quantity).amount, currency)


def _phase_at(phases: list[pricing.Phase], month: int) -> pricing.Phase | None:
    for phase in phases:
        if phase.start_month <= month <= phase.end_month:
            return phase
    return None


def line_figures(line, extras: LineExtras, *, months: int, periods: int, currency: str):
    """The line's figures (see the module), and its committed amount per billing period."""
    figures = LineFigures(line)
    per_period = [ZERO] * periods
    if pricing.is_once(line):
        net = _rated(pricing.net_pricing(line), line.quantity, currency)
        listed = _rated(pricing.list_pricing(line), line.quantity, currency)
        figures.net_first = figures.net_last = figures.committed = figures.net_total = net
        figures.list_first = figures.list_total = listed
        return figures, per_period
    list_terms = pricing.period_list_pricing(line)
    if pricing.is_usage(line):
        net_terms = pricing.net_pricing(line, tiers=extras.tiers)
        minimum = round_money(rating.pricing_value(net_terms, "min_amount"), currency)
        if rating.is_rated_on_amounts(net_terms):
            net = listed = minimum  # rated per event: no quantity to estimate from
        else:
            estimate = (line.estimated_quantity or ZERO) * months
            net = _rated(net_terms, estimate, currency)
            listed = _rated(list_terms, estimate, currency)
        per_period = [minimum] * periods
        figures.net_first = figures.net_last = net
        figures.list_first = listed
        figures.committed = minimum * periods
        figures.estimated = (net - minimum) * periods
        figures.net_total = net * periods
        figures.list_total = listed * periods
        return figures, per_period
    cache: dict[pricing.Phase | None, tuple[Decimal, Decimal]] = {}
    for p in range(periods):
        phase = _phase_at(extras.phases, p * months + 1)
        if phase not in cache:
            quantity = phase.quantity if phase else line.quantity
            cache[phase] = (
                _rated(pricing.net_pricing(line, phase=phase), quantity, currency),
                _rated(list_terms, quantity, currency),
            )
        net, listed = cache[phase]
        per_period[p] = net
        figures.list_total += listed
        if p == 0:
            figures.net_first, figures.list_first = net, listed
        figures.net_last = net
    figures.committed = figures.net_total = exact_sum(per_period)
    return figures, per_period


def quote_totals(quote, lines=None, extras: dict[int, LineExtras] | None = None) -> QuoteTotals:
    """The quote's figures. `lines`: the quote's lines when the caller has them (unsaved ones
    included, e.g. the change form's); `extras`: their tiers and phases (read when not given)."""
    if lines is None:
        lines = list(quote.lines.select_related("charge").prefetch_related("charge__tiers"))
    for line in lines:
        line.quote = quote  # one quote object (its plan and customer read once)
    if extras is None:
        extras = read_extras(lines)
    currency = quote.currency
    months = quote.interval
    periods = max(quote.term_months // months, 1)
    totals = QuoteTotals(currency=currency, months=months, periods=periods)
    committed_by_period = [ZERO] * periods
    for line in lines:
        figures, per_period = line_figures(
            line, extras.get(line.pk, NO_EXTRAS), months=months, periods=periods, currency=currency
        )
        totals.lines.append(figures)
        totals.list_total += figures.list_total
        totals.net_total += figures.net_total
        if pricing.is_once(line):
            if line.kind == QuoteLine.Kind.CREDIT:
                totals.credits += figures.committed
            else:
                totals.one_time += figures.committed
            continue
        committed_by_period = [a + b for a, b in zip(committed_by_period, per_period, strict=True)]
        if pricing.is_usage(line):
            totals.commitments += figures.committed
            totals.estimated_usage += figures.estimated
        else:
            totals.recurring += figures.committed
            totals.mrr_first += figures.net_first
            totals.mrr_full += figures.net_last
    totals.mrr_first /= months
    totals.mrr_full /= months
    totals.arr = totals.mrr_full * TWELVE
    once = totals.one_time + totals.credits
    first_year_periods = min(periods, max(12 // months, 1))
    totals.first_year = exact_sum(committed_by_period[:first_year_periods]) + once
    totals.tcv = totals.recurring + totals.commitments + once
    totals.acv = round_money((totals.tcv - totals.one_time) * 12 / quote.term_months, currency)
    return totals
