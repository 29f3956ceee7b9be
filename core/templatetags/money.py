"""Template filters for money outside the admin (portal pages, invoice PDF): they delegate to
core.formatting, so a page, a PDF and an email show the same amount the same way.

    {{ invoice.total|money:invoice.currency }}        $2,250.00 · ¥1,200 · €4,409.74
    {{ line.unit_price|price:invoice.currency }}      $0.000003 · $40.00
    {{ line.quantity|qty }}                           40,901,739
    {{ usage.quantity|qty:"tokens" }}                 40,901,739 tokens
    {{ line.explanation|explain:invoice.currency }}   ["12 × $25.00 = $300.00", …]

A rating step's subtotal is exact ($0.004 stays $0.004): `explain` shows it as a price, never
rounded to cents by `money` — only a line's amount is rounded.
"""

from django import template

from catalog.pricing_display import explanation_lines
from core.formatting import format_money, format_price, format_quantity

register = template.Library()


@register.filter
def money(amount, currency: str) -> str:
    """An amount with its currency's symbol, rounded half-up to its minor unit: $1,234.50."""
    return format_money(amount, str(currency))


@register.filter
def price(value, currency: str) -> str:
    """A unit price with its currency's symbol and all its significant decimals: $0.000002."""
    return format_price(value, str(currency))


@register.filter
def qty(value, unit: str = "") -> str:
    """A quantity without trailing zeros or exponent, grouped: 1,500, 2.5, 0 (with a unit)."""
    return format_quantity(value, unit)


@register.filter
def explain(steps, currency: str) -> list[str]:
    """A stored rating explanation, one readable line a step: '12 × $25.00 = $300.00'."""
    return explanation_lines(steps, str(currency))
