"""The price terms of a quote line: its list terms (the catalog's) and its net terms (what the
customer pays: negotiated price or tiers, discount, commitment, billing interval).

Pure functions over a line and the tiers and phases given with it (read once by the caller), no
database: the totals, the approval rules, the PDF and the conversion into a subscription all read
a line's terms here, so what the quote shows is what the subscription bills.

- Catalog prices are per plan interval. Billed every k plan intervals (a monthly plan billed
  quarterly: k = 3), a fixed fee's prices (unit price, tiers, minimum and cap) are k times the
  catalog's; a usage charge's tiers stay per billing period and its minimum and cap scale by k.
- A percentage discount applies to every price of the line (unit price, tiers' prices and flat
  fees, package price, percentage rate and fixed fee); an amount discount comes off the unit price
  (per unit). Net prices keep 12 decimal places (half-up), like every unit price.
- A usage line's minimum commitment is per month: per billing period it is that × the months.
- One-time fees and prepaid credits are priced "standard" (quantity × unit price), billed once.
"""

import copy
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from catalog import rating
from core.money import PRICE_DECIMAL_PLACES, plain

ZERO = Decimal(0)
HUNDRED = Decimal(100)
_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)


def price(value: Decimal) -> str:
    """A unit price as a pricing string, at most 12 decimal places (half-up)."""
    return plain(value.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_UP))


def _scale(pricing: dict, factor: Decimal, keys: tuple[str, ...], tier_keys=()) -> None:
    for key in keys:
        value = rating.pricing_value(pricing, key, None)
        if value is not None:
            pricing[key] = price(value * factor)
    for tier in pricing.get("tiers") or []:
        for key in tier_keys:
            tier[key] = price(rating.pricing_value(tier, key) * factor)


PRICE_KEYS = ("unit_price", "package_price", "fixed_fee", "min_per_event", "max_per_event")
TIER_KEYS = ("unit_price", "flat_fee")


@dataclass(frozen=True)
class Phase:
    """A span of the term, in months (1-based, inclusive), with its own terms."""

    start_month: int
    end_month: int
    quantity: Decimal
    unit_price: Decimal | None = None
    discount_percent: Decimal | None = None


def is_usage(line) -> bool:
    return line.kind == "usage"


def is_once(line) -> bool:
    """Billed once, on the first invoice: a one-time fee or prepaid credits."""
    return line.kind in ("one_time", "credit")


def list_pricing(line) -> dict:
    """The catalog's terms of the line (one-time fees and credits: their typed price)."""
    if line.charge_id is None or is_once(line):
        return {"model": "standard", "unit_price": price(line.unit_price or ZERO)}
    return line.charge.pricing()


def _interval(line) -> tuple[int, int]:
    """(months per billing period, plan intervals per billing period) of the line's quote."""
    months = line.quote.interval
    return months, max(months // line.quote.plan.billing_interval_months, 1)


def net_pricing(line, *, tiers: list[dict] | None = None, phase: Phase | None = None) -> dict:
    """What the customer pays for the line (in `phase`, when it has phases), per billing period.

    `tiers`: negotiated tiers ([{"from", "up_to", "unit_price", "flat_fee"}]) replacing the
    catalog's.
    """
    pricing = copy.deepcopy(list_pricing(line))
    model = rating.pricing_model(pricing, strict=False)
    if tiers and model.tiered:
        pricing["tiers"] = copy.deepcopy(tiers)
    unit_price = line.unit_price
    if phase is not None and phase.unit_price is not None:
        unit_price = phase.unit_price
    if unit_price is not None and model.unit_price:
        pricing["unit_price"] = price(unit_price)
    percent = line.discount_percent
    if phase is not None and phase.discount_percent is not None:
        percent = phase.discount_percent
    if percent:
        keep = (HUNDRED - percent) / HUNDRED
        _scale(pricing, keep, PRICE_KEYS, TIER_KEYS)
        if model.on_amounts and "rate" in pricing:
            pricing["rate"] = plain(rating.pricing_value(pricing, "rate") * keep)
    if line.discount_amount and model.unit_price:
        net = rating.pricing_value(pricing, "unit_price") - line.discount_amount
        pricing["unit_price"] = price(max(net, ZERO))
    return _per_period(line, pricing)


def period_list_pricing(line) -> dict:
    """The list terms per billing period, with the line's commitment: what the line would cost
    without a negotiated price or tiers and without discount."""
    return _per_period(line, copy.deepcopy(list_pricing(line)))


def _per_period(line, pricing: dict) -> dict:
    """Scale a line's terms to its billing period and add its commitment (see the module)."""
    if is_once(line):
        return pricing
    months, factor = _interval(line)
    if factor != 1:
        bounds = ("min_amount", "max_amount")
        if is_usage(line):
            _scale(pricing, Decimal(factor), bounds)
        else:
            _scale(pricing, Decimal(factor), PRICE_KEYS + bounds, TIER_KEYS)
    if is_usage(line) and line.minimum_amount is not None:
        pricing["min_amount"] = price(line.minimum_amount * months)
    return pricing
