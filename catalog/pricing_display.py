"""Price terms (a charge's or a subscription item's `pricing` dict) as people read them.

One place decides how a pricing model reads, asking the registry (`catalog.rating.PRICING_MODELS`)
what the model is priced by — never comparing model names:

- `pricing_summary`: one line, for lists and messages:
  "Graduated · 0 – 10,000,000: $0.000004 · above 10,000,000: $0.000003".
- `pricing_table_html`: the model and, for tiered models, a small table of the tiers (from, to,
  unit price, flat fee); other models read as their summary.

Tiers follow the rating engine's rule: a tier runs from the previous tier's `up_to` (0 for the
first) up to and including its own; the last one is unbounded.
"""

from decimal import Decimal

from django.utils.html import format_html, format_html_join

from catalog.rating import pricing_model
from core.formatting import format_money, format_price, format_quantity
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
            span = (
                f"above {format_quantity(lower)}"
                if up_to is None
                else f"{format_quantity(lower)} – {format_quantity(up_to)}"
            )
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


_CELL = '<td class="text-right" style="padding:0 0 0 1rem">{}</td>'
_HEAD = '<th class="text-right" style="padding:0 0 0 1rem">{}</th>'
_ROW = "<tr>" + _CELL * 4 + "</tr>"
_TABLE = (
    '<div class="pricing"><strong>{}</strong>{}<table class="pricing-tiers text-sm"><thead><tr>'
    + "".join(_HEAD.replace("{}", title) for title in ("From", "Up to", "Unit price", "Flat fee"))
    + "</tr></thead><tbody>{}</tbody></table></div>"
)


def pricing_table_html(pricing: dict, currency: str):
    """The model and its tiers as a small table (tiered models), else the summary; safe HTML."""
    if not pricing_model(pricing, strict=False).tiered:
        return format_html('<span class="pricing">{}</span>', pricing_summary(pricing, currency))
    rows = format_html_join(
        "",
        _ROW,
        (
            (
                format_quantity(lower),
                "and above" if up_to is None else format_quantity(up_to),
                format_price(price, currency),
                format_price(flat, currency) if flat else "—",
            )
            for lower, up_to, price, flat in _tiers(pricing)
        ),
    )
    extra = _terms(pricing, currency, tiers=False)
    return format_html(
        _TABLE,
        model_title(pricing),
        format_html(" · {}", " · ".join(extra)) if extra else "",
        rows,
    )
