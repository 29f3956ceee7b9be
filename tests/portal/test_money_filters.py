"""The money, price and qty template filters show what core.formatting shows (issue 18)."""

from decimal import Decimal

import pytest
from django.template import Context, Template


def render(source: str, **context) -> str:
    return Template("{% load money %}" + source).render(Context(context))


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("1234.5"), "USD", "$1,234.50"),
        (Decimal("2250"), "usd", "$2,250.00"),
        (Decimal("1200"), "JPY", "¥1,200"),
        (Decimal("4409.735"), "EUR", "€4,409.74"),  # half-up, once
        (Decimal("-12.5"), "USD", "-$12.50"),
        (None, "USD", ""),
    ],
)
def test_money_shows_the_currency_symbol_and_its_minor_unit(amount, currency, expected):
    assert render("{{ a|money:c }}", a=amount, c=currency) == expected


@pytest.mark.parametrize(
    ("price", "currency", "expected"),
    [
        (Decimal("0.000003000000"), "USD", "$0.000003"),
        (Decimal("40"), "USD", "$40.00"),
        (Decimal("40"), "JPY", "¥40"),
        (Decimal("0.002"), "EUR", "€0.002"),
        (None, "USD", ""),
    ],
)
def test_price_keeps_the_significant_decimals_of_a_unit_price(price, currency, expected):
    assert render("{{ p|price:c }}", p=price, c=currency) == expected


@pytest.mark.parametrize(
    ("template", "quantity", "expected"),
    [
        ("{{ q|qty }}", Decimal("40901739.000000000000"), "40,901,739"),
        ("{{ q|qty }}", Decimal("2.500"), "2.5"),
        ("{{ q|qty }}", Decimal("0E-12"), "0"),
        ('{{ q|qty:"tokens" }}', Decimal("40901739"), "40,901,739 tokens"),
        ("{{ q|qty }}", None, ""),
    ],
)
def test_qty_groups_a_quantity_without_trailing_zeros(template, quantity, expected):
    assert render(template, q=quantity) == expected
