"""Amounts, prices and quantities as people read them (Babel, one locale)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.formatting import format_money, format_price, format_quantity
from core.money import round_money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("2250.000000000000000", "USD", "$2,250.00"),
        ("0E-12", "USD", "$0.00"),
        ("4409.7400", "EUR", "€4,409.74"),
        ("1200", "JPY", "¥1,200"),
        ("1199.5", "JPY", "¥1,200"),  # half-up, not Babel's half-even
        ("0.125", "USD", "$0.13"),
        ("-12.5", "USD", "-$12.50"),
        ("-0.004", "USD", "$0.00"),  # below zero, but rounded to nothing: no minus sign
        ("-0", "JPY", "¥0"),
        ("7.1235", "KWD", "KWD7.124"),
        (None, "USD", ""),
    ],
)
def test_money_has_its_currency_grouping_and_minor_unit(amount, currency, shown):
    assert format_money(None if amount is None else Decimal(amount), currency) == shown


@pytest.mark.parametrize(
    ("price", "currency", "shown"),
    [
        ("0.000003000000", "USD", "$0.000003"),
        ("0.000004", "USD", "$0.000004"),
        ("40.000000000000", "USD", "$40.00"),
        ("38.5", "USD", "$38.50"),
        ("0E-12", "USD", "$0.00"),
        ("40", "JPY", "¥40"),
        ("0.5", "JPY", "¥0.5"),
        ("1234.000000000001", "USD", "$1,234.000000000001"),
    ],
)
def test_unit_prices_keep_their_significant_decimals_and_no_exponent(price, currency, shown):
    assert format_price(Decimal(price), currency) == shown


@pytest.mark.parametrize(
    ("quantity", "unit", "shown"),
    [
        ("40901739.000000", "tokens", "40,901,739 tokens"),
        ("2.500000", "", "2.5"),
        ("0E-6", "", "0"),
        ("-1000", "calls", "-1,000 calls"),
    ],
)
def test_quantities_are_grouped_without_trailing_zeros(quantity, unit, shown):
    assert format_quantity(Decimal(quantity), unit) == shown


def _parse(text: str) -> Decimal:
    sign = -1 if text.startswith("-") else 1
    digits = "".join(c for c in text if c.isdigit() or c == ".")
    return sign * Decimal(digits)


amounts = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6, allow_nan=False
)


@given(amount=amounts, currency=st.sampled_from(["USD", "EUR", "JPY", "KWD"]))
def test_the_money_shown_is_the_amount_rounded_once(amount, currency):
    assert _parse(format_money(amount, currency)) == round_money(amount, currency)


@given(price=st.decimals(min_value=0, max_value=Decimal("1e9"), places=12, allow_nan=False))
def test_the_price_shown_is_the_price_exactly(price):
    shown = format_price(price, "USD")
    assert "E" not in shown and _parse(shown) == price


def test_a_zero_below_zero_has_no_minus_sign():
    assert format_price(Decimal("-0"), "USD") == "$0.00"
    assert format_quantity(Decimal("-0.000"), "seat") == "0 seats"
    assert format_quantity(Decimal("0") * -1) == "0"
