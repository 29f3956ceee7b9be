"""core.money: the one rounding function and the one splitter."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DomainError
from core.money import minor_units, quantum, round_money, split, to_minor

CURRENCIES = ["USD", "JPY", "KWD"]
QUANTUM = {"USD": Decimal("0.01"), "JPY": Decimal("1"), "KWD": Decimal("0.001")}


# --- minor units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "places", "step"),
    [
        ("USD", 2, Decimal("0.01")),
        ("EUR", 2, Decimal("0.01")),
        ("JPY", 0, Decimal("1")),
        ("KWD", 3, Decimal("0.001")),
        ("BHD", 3, Decimal("0.001")),
        ("CLF", 4, Decimal("0.0001")),
    ],
)
def test_minor_units_and_quantum_follow_iso_4217(currency, places, step):
    assert minor_units(currency) == places
    assert quantum(currency) == step


# --- round_money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        # USD: 2 decimals
        ("1.234", "USD", "1.23"),
        ("1.235", "USD", "1.24"),
        ("0.005", "USD", "0.01"),  # a tie rounds up (half-up), not to even
        ("0.015", "USD", "0.02"),
        ("0.025", "USD", "0.03"),  # banker's rounding would give 0.02
        ("0.0049999", "USD", "0.00"),
        ("-0.005", "USD", "-0.01"),  # ties go away from zero
        ("-1.234", "USD", "-1.23"),
        ("0.000002", "USD", "0.00"),
        ("770", "USD", "770.00"),
        # JPY: no decimals
        ("2.5", "JPY", "3"),
        ("3.5", "JPY", "4"),
        ("2.4999", "JPY", "2"),
        ("-2.5", "JPY", "-3"),
        ("1000.5", "JPY", "1001"),
        # KWD: 3 decimals
        ("1.2345", "KWD", "1.235"),
        ("1.2344", "KWD", "1.234"),
        ("0.0005", "KWD", "0.001"),
        ("-0.0005", "KWD", "-0.001"),
    ],
)
def test_round_money_rounds_half_up_to_the_minor_unit(amount, currency, expected):
    # When
    rounded = round_money(Decimal(amount), currency)

    # Then the value and its number of decimals are the currency's
    assert rounded == Decimal(expected)
    assert str(rounded) == expected


def test_round_money_accepts_a_lower_case_currency_code():
    assert str(round_money(Decimal("1.005"), "usd")) == "1.01"


@pytest.mark.parametrize("amount", [0.1, 1.005, 2, "1.00"])
def test_round_money_rejects_anything_but_a_decimal(amount):
    with pytest.raises(TypeError, match="round_money takes a Decimal"):
        round_money(amount, "USD")


@pytest.mark.parametrize("currency", ["ZZZ", "DOLLARS", ""])
def test_round_money_with_an_unknown_currency_is_a_domain_error(currency):
    with pytest.raises(DomainError) as caught:
        round_money(Decimal("1.00"), currency)
    assert caught.value.message == (
        f"Unknown currency {currency!r}: use an ISO 4217 code such as USD."
    )


@settings(max_examples=200)
@given(
    amount=st.decimals(
        min_value=Decimal("-1000000"),
        max_value=Decimal("1000000"),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    ),
    currency=st.sampled_from(CURRENCIES),
)
def test_round_money_lands_on_the_quantum_within_half_of_it(amount, currency):
    rounded = round_money(amount, currency)
    q = QUANTUM[currency]
    assert rounded % q == 0
    assert abs(rounded - amount) <= q / 2
    assert round_money(rounded, currency) == rounded  # rounding is idempotent


# --- to_minor --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "cents"),
    [
        ("12.345", "USD", 1235),
        ("833.53", "USD", 83353),
        ("0.004", "USD", 0),
        ("-0.005", "USD", -1),
        ("2.5", "JPY", 3),
        ("2201", "JPY", 2201),
        ("1.2345", "KWD", 1235),
        ("0", "USD", 0),
    ],
)
def test_to_minor_is_an_integer_count_of_minor_units_after_rounding(amount, currency, cents):
    result = to_minor(Decimal(amount), currency)
    assert result == cents
    assert type(result) is int


# --- split: exact examples --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "currency", "parts"),
    [
        # even split; the leftover cent goes to the earliest of equal remainders
        ("100.00", [1, 1, 1], "USD", ["33.34", "33.33", "33.33"]),
        ("0.05", [1, 1], "USD", ["0.03", "0.02"]),
        ("10", [1, 2, 3, 4], "USD", ["1.00", "2.00", "3.00", "4.00"]),
        # the largest remainder gets the leftover, wherever it is
        ("1.00", [1, 2], "USD", ["0.33", "0.67"]),
        # the revenue schedule of the end-to-end test: 3 × 770.00 over 17/28/31/14 days
        ("2310.00", [17, 28, 31, 14], "USD", ["436.33", "718.67", "795.67", "359.33"]),
        # a zero weight gets nothing
        ("1.00", [0, 1, 1], "USD", ["0.00", "0.50", "0.50"]),
        # the total is rounded first (10.005 → 10.01)
        ("10.005", [1, 1], "USD", ["5.01", "5.00"]),
        # negative totals mirror positive ones
        ("-100.00", [1, 1, 1], "USD", ["-33.34", "-33.33", "-33.33"]),
        # other minor units
        ("1000", [1, 1, 1], "JPY", ["334", "333", "333"]),
        ("1.000", [1, 1, 1], "KWD", ["0.334", "0.333", "0.333"]),
        # decimal weights (fractions of a period)
        (
            "100.00",
            [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")],
            "USD",
            ["50.00", "25.00", "25.00"],
        ),
        # one part takes everything
        ("99.99", [7], "USD", ["99.99"]),
    ],
)
def test_split_examples(total, weights, currency, parts):
    result = split(Decimal(total), weights, currency)
    assert result == [Decimal(p) for p in parts]
    assert sum(result) == round_money(Decimal(total), currency)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "Cannot split an amount into zero parts."),
        ([0, 0], "Split weights must be non-negative and not all zero."),
        ([Decimal("0")], "Split weights must be non-negative and not all zero."),
        ([1, -1, 1], "Split weights must be non-negative and not all zero."),
        ([Decimal("-0.5")], "Split weights must be non-negative and not all zero."),
    ],
)
def test_split_refuses_zero_or_negative_weights(weights, message):
    with pytest.raises(DomainError) as caught:
        split(Decimal("100.00"), weights, "USD")
    assert caught.value.message == message


# --- split: properties ------------------------------------------------------------------------

totals = st.decimals(
    min_value=Decimal("-1000000000"),
    max_value=Decimal("1000000000"),
    places=4,
    allow_nan=False,
    allow_infinity=False,
)
integer_weights = st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=24)
decimal_weights = st.lists(
    st.decimals(min_value=Decimal("0"), max_value=Decimal("1000"), places=4),
    min_size=1,
    max_size=24,
)
weight_lists = st.one_of(integer_weights, decimal_weights).filter(lambda ws: sum(ws) > 0)


@settings(max_examples=200)
@given(total=totals, weights=weight_lists, currency=st.sampled_from(CURRENCIES))
def test_split_parts_sum_exactly_to_the_rounded_total(total, weights, currency):
    parts = split(total, weights, currency)
    assert len(parts) == len(weights)
    assert sum(parts) == round_money(total, currency)


@settings(max_examples=200)
@given(total=totals, weights=weight_lists, currency=st.sampled_from(CURRENCIES))
def test_split_parts_are_whole_minor_units(total, weights, currency):
    q = QUANTUM[currency]
    assert all(part % q == 0 for part in split(total, weights, currency))


@settings(max_examples=200)
@given(total=totals, weights=weight_lists, currency=st.sampled_from(CURRENCIES))
def test_split_each_part_is_within_one_quantum_of_its_exact_share(total, weights, currency):
    q = QUANTUM[currency]
    rounded_total = round_money(total, currency)
    weight_sum = sum(Decimal(w) for w in weights)
    for part, weight in zip(split(total, weights, currency), weights, strict=True):
        exact_share = rounded_total * Decimal(weight) / weight_sum
        assert abs(part - exact_share) < q
        # a part never has the opposite sign of the total
        assert part * rounded_total >= 0


@settings(max_examples=200)
@given(
    total=totals,
    weight=st.integers(min_value=1, max_value=1000),
    count=st.integers(min_value=1, max_value=30),
    currency=st.sampled_from(CURRENCIES),
)
def test_split_of_equal_weights_gives_the_leftover_to_the_earliest_parts(
    total, weight, count, currency
):
    # Given equal weights, every exact share is the same: the leftover minor units go first-come
    q = QUANTUM[currency]
    parts = split(total, [weight] * count, currency)
    magnitudes = [abs(p) for p in parts]

    # Then parts never grow along the list, differ by at most one quantum, and are reproducible
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert magnitudes[0] - magnitudes[-1] <= q
    assert split(total, [weight] * count, currency) == parts
