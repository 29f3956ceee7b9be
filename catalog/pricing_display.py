"""Price terms (a charge's or a subscription item's `pricing` dict) as people read them.

One place decides how a pricing model reads, asking the registry (`catalog.rating.PRICING_MODELS`)
what the model is priced by — never comparing model names:

- `pricing_summary`: one line, for lists and messages:
  "Graduated · 0 – 10,000,000: $0.000004 · above 10,000,000: $0.000003".
- `pricing_table_html`: the model and, for tiered models, a small table of the tiers (units,
  unit price, and flat fee when a tier has one); other models read as their summary.

Tiers follow the rating engine's rule: a tier runs from the previous tier's `up_to` (0 for the
first) up to and including its own; the last one is unbounded.
"""

import re
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from catalog.rating import pricing_model
from core.formatting import format_money, format_price, format_quantity, plural_unit
from core.money import plain


def _dec(value) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _tiers(pricing: dict) -> list[tuple[Decimal, Decimal | None, Decimal, Decimal]]:
    """[(from, up_to or None, unit price, flat fee)] as the rating engine reads them."""
    rows, lower = [], Decimal(0)
    for tier in pricing.get("tiers") or []:
        up_to = None if tier.get("up_to") in (None, "") else _dec(tier["up_to"])
        rows.append((lower, up_to, _dec(tier.get("unit_price")), _dec(tier.get("flat_fee"))))
        if up_to is not None:
            lower = up_to
    return rows


def model_title(pricing: dict) -> str:
    """The model's short name: Graduated, Flat, Percentage…"""
    return pricing_model(pricing, strict=False).name.capitalize()


def _terms(pricing: dict, currency: str, *, tiers: bool = True) -> list[str]:
    model = pricing_model(pricing, strict=False)
    parts = []
    if model.unit_price:
        price = format_price(_dec(pricing.get("unit_price")), currency)
        parts.append(f"{price} per period" if model.fixed_fee else f"{price} per unit")
    if model.tiered and tiers:
        for lower, up_to, price, flat in _tiers(pricing):
            span = _span(lower, up_to)
            fee = f" + {format_price(flat, currency)} flat" if flat else ""
            parts.append(f"{span}: {format_price(price, currency)}{fee}")
    if model.package:
        parts.append(
            f"{format_price(_dec(pricing.get('package_price')), currency)} per "
            f"{format_quantity(_dec(pricing.get('package_size')))} units"
        )
    if model.on_amounts:
        text = f"{plain(_dec(pricing.get('rate')))}%"
        if _dec(pricing.get("fixed_fee")):
            text += f" + {format_price(_dec(pricing['fixed_fee']), currency)}"
        parts.append(f"{text} per event")
        if _dec(pricing.get("free_events")):
            parts.append(f"first {format_quantity(_dec(pricing['free_events']))} events free")
        for key, word in (("min_per_event", "min"), ("max_per_event", "max")):
            if pricing.get(key) not in (None, ""):
                parts.append(f"{word} {format_price(_dec(pricing[key]), currency)} per event")
    if model.free_units and _dec(pricing.get("free_units")):
        parts.append(f"first {format_quantity(_dec(pricing['free_units']))} units free")
    if pricing.get("min_amount") not in (None, ""):
        parts.append(f"minimum {format_money(_dec(pricing['min_amount']), currency)} per period")
    if pricing.get("max_amount") not in (None, ""):
        parts.append(f"cap {format_money(_dec(pricing['max_amount']), currency)} per period")
    return parts


def pricing_summary(pricing: dict, currency: str) -> str:
    """'Standard · $0.002 per unit', 'Graduated · 0 – 100: $1.00 · above 100: $0.50'."""
    return " · ".join([model_title(pricing), *_terms(pricing, currency)])


# Compact enough for a column of an inline (the plan's Charges tab at 1366 px): the tier's units
# in one cell, its price, and a flat-fee column only when a tier has one.
_UNITS = '<td style="padding:0;white-space:nowrap">{}</td>'
_CELL = '<td class="text-right" style="padding:0 0 0 .75rem;white-space:nowrap">{}</td>'
_HEAD = '<th class="{}" style="padding:0 0 0 {};white-space:nowrap">{}</th>'


def pricing_table_html(pricing: dict, currency: str):
    """The model and its tiers as a small table (tiered models), else the summary; safe HTML."""
    if not pricing_model(pricing, strict=False).tiered:
        return format_html('<span class="pricing">{}</span>', pricing_summary(pricing, currency))
    tiers = _tiers(pricing)
    flat_fees = any(flat for *_, flat in tiers)
    heads = [("text-left", "0", "Units"), ("text-right", ".75rem", "Unit price")]
    heads += [("text-right", ".75rem", "Flat fee")] if flat_fees else []
    rows = format_html_join(
        "",
        "<tr>{}</tr>",
        ((_tier_cells(tier, currency, flat_fees),) for tier in tiers),
    )
    extra = _terms(pricing, currency, tiers=False)
    return format_html(
        '<div class="pricing"><strong>{}</strong>{}<table class="pricing-tiers text-sm">'
        "<thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>",
        model_title(pricing),
        format_html(" · {}", " · ".join(extra)) if extra else "",
        format_html_join("", _HEAD, heads),
        rows,
    )


def _tier_cells(tier, currency: str, flat_fees: bool):
    lower, up_to, price, flat = tier
    cells = [
        format_html(_UNITS, _span(lower, up_to)),
        format_html(_CELL, format_price(price, currency)),
    ]
    if flat_fees:
        cells.append(format_html(_CELL, format_price(flat, currency) if flat else "—"))
    return mark_safe("".join(cells))  # each cell escaped by format_html


def _span(lower: Decimal, up_to: Decimal | None) -> str:
    """A tier's units: '0 – 10,000,000', 'above 10,000,000'."""
    if up_to is None:
        return f"above {format_quantity(lower)}"
    return f"{format_quantity(lower)} – {format_quantity(up_to)}"


# --- rating steps ------------------------------------------------------------------------------
# The rating engine (catalog.rating) writes its steps' descriptions without a currency ("12 × 25",
# "minimum commitment 200: true-up"), and invoices store them so (InvoiceLine.explanation, the
# API). People read them with the currency: the engine's money terms — the price after "×", a flat
# fee or per-event fee after "+", a minimum, a cap, the base of a percentage — are formatted here as
# prices (exact: a step is never rounded). tests/catalog/test_pricing_display.py runs every model
# through the engine so a new description is caught here.
_NUMBER = r"(-?\d[\d,]*(?:\.\d+)?)"
_MONEY_TERMS = re.compile(
    rf"(?<=× ){_NUMBER}(?=$| \+|\))"
    rf"|(?<=\+ ){_NUMBER}(?= flat| per event)"
    rf"|(?<=minimum commitment ){_NUMBER}"
    rf"|(?<=capped at ){_NUMBER}"
    rf"|(?<=the minimum ){_NUMBER}"
    rf"|(?<=% of ){_NUMBER}"
)


def step_description(description: str, currency: str) -> str:
    """A rating step's description with its money terms in the currency: '12 × $25.00'."""
    return _MONEY_TERMS.sub(
        lambda m: format_price(Decimal(m.group(0).replace(",", "")), currency), description
    )


def explanation_lines(steps: list[dict], currency: str) -> list[str]:
    """A stored explanation (Rating.explanation()) as people read it, one line a step:
    '12 × $25.00 = $300.00' — each subtotal exact, as a price."""
    lines = []
    for step in steps or []:
        text = step_description(step.get("description", ""), currency)
        if step.get("subtotal") not in (None, ""):
            text += f" = {format_price(_dec(step['subtotal']), currency)}"
        lines.append(text)
    return lines


def _units(quantity, unit: str) -> str:
    return f"{format_quantity(quantity)} {plural_unit(unit, quantity)}"


def terms_in_words(terms: dict, currency: str, *, unit: str = "unit", period: str = "month"):
    """A line's price terms as sentences a customer reads, one a list item:

    ["First 1,000,000 calls: $0.002 each", "Next 9,000,000 calls (1,000,001 – 10,000,000):
    $0.0015 each", "Above 10,000,000 calls: $0.001 each"] for graduated tiers; volume tiers say
    that every unit takes the price of the tier the period's total reaches.
    """
    model = pricing_model(terms, strict=False)
    words = []
    if model.fixed_fee:
        words.append(f"{format_price(_dec(terms.get('unit_price')), currency)} per {period}")
    elif model.unit_price:
        words.append(f"{format_price(_dec(terms.get('unit_price')), currency)} per {unit}")
    if model.tiered:
        tiers, lower = [], Decimal(0)
        for tier in terms.get("tiers") or []:
            up_to = None if tier.get("up_to") in (None, "") else _dec(tier["up_to"])
            tiers.append((lower, up_to, _dec(tier.get("unit_price")), _dec(tier.get("flat_fee"))))
            lower = up_to if up_to is not None else lower
        if pricing_model(terms).name == "volume":
            words.append(
                f"Every {unit} of the {period} at the price of the tier its total reaches:"
            )
        else:
            words.append(f"Each tier at its own price, per {period}:")
        for number, (start, up_to, price, flat) in enumerate(tiers):
            each = f"{format_price(price, currency)} per {unit}"
            if flat:
                each += f" + {format_money(flat, currency)} flat"
            if up_to is None:
                span = f"Above {_units(start, unit)}" if start else f"Every {unit}"
            elif number == 0:
                span = f"First {_units(up_to, unit)}"
            else:
                span = (
                    f"Next {_units(up_to - start, unit)} "
                    f"({format_quantity(start + 1)} – {format_quantity(up_to)})"
                )
            words.append(f"{span}: {each}")
    if model.package:
        words.append(
            f"{format_price(_dec(terms.get('package_price')), currency)} per block of "
            f"{_units(_dec(terms.get('package_size')), unit)} (a started block counts)"
        )
    if model.on_amounts:
        text = f"{_dec(terms.get('rate')).normalize():f}% of each transaction"
        if _dec(terms.get("fixed_fee")):
            text += f" + {format_price(_dec(terms['fixed_fee']), currency)}"
        words.append(text)
    if model.free_units and _dec(terms.get("free_units")):
        words.append(f"First {_units(_dec(terms['free_units']), unit)} free each {period}")
    return words
