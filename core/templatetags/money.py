from decimal import Decimal

from django import template

from core.money import minor_units, plain, round_money

register = template.Library()


@register.filter
def money(amount, currency: str) -> str:
    """An amount with the currency's minor-unit decimals and thousands separators: 1,234.50."""
    if amount is None or amount == "":
        return ""
    value = round_money(Decimal(amount), currency)
    return f"{value:,.{minor_units(currency)}f}"


@register.filter
def qty(value) -> str:
    """A quantity without trailing zeros or exponent, with separators: 1,500, 2.5, 0."""
    if value is None or value == "":
        return ""
    value = Decimal(value)
    return f"{value.normalize():,f}" if value else "0"


@register.filter
def price(value) -> str:
    """A unit price without trailing zeros (keeps up to 12 decimals): 0.000002."""
    return "" if value is None or value == "" else plain(Decimal(value))
