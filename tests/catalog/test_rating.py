"""catalog.rating: the pure rating engine (no database).

Every expected amount below is worked out by hand from the semantics in the module's docstring:
tiers cover (from, up_to], graduated fills tier by tier (a tier's flat fee once it holds units),
volume prices every unit at the tier the total reaches, package bills started blocks, percentage
clamps each event's fee to [min_per_event, max_per_event]; free units come off first; the period
amount is capped at max_amount and topped up to min_amount. Nothing is rounded.
"""

from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.rating import Rating, RatingStep, rate, rate_events
from core.errors import ValidationError

D = Decimal

# The tiers: 0–100 at 1.00, 101–500 at 0.80, 501+ at 0.50.
TIERS = [
    {"up_to": "100", "unit_price": "1.00", "flat_fee": "0"},
    {"up_to": "500", "unit_price": "0.80"},
    {"up_to": None, "unit_price": "0.50"},
]
# The same tiers with a flat fee on each: 10, 20 and 30.
FLAT_TIERS = [
    {"up_to": "100", "unit_price": "1.00", "flat_fee": "10"},
    {"up_to": "500", "unit_price": "0.80", "flat_fee": "20"},
    {"up_to": None, "unit_price": "0.50", "flat_fee": "30"},
]
# The percentage charge: 1.5 % + 0.10 per transaction, at least 0.25 per transaction.
CARD_FEES = {"model": "percentage", "rate": "1.5", "fixed_fee": "0.10", "min_per_event": "0.25"}


def graduated(tiers=TIERS, **extra) -> dict:
    return {"model": "graduated", "tiers": tiers, **extra}


def volume(tiers=TIERS, **extra) -> dict:
    return {"model": "volume", "tiers": tiers, **extra}


def package(**extra) -> dict:
    return {"model": "package", "package_size": "100", "package_price": "10.00", **extra}


def standard(unit_price="1.00", **extra) -> dict:
    return {"model": "standard", "unit_price": unit_price, **extra}


def percentage(**extra) -> dict:
    return {**CARD_FEES, **extra}


def units(rating: Rating) -> list[Decimal]:
    return [s.units for s in rating.steps]


def subtotals(rating: Rating) -> list[Decimal]:
    return [s.subtotal for s in rating.steps]


# --- the check vectors -----------------------------------------------------------------


def test_graduated_check_vector_650_units_is_495():
    rating = rate(graduated(), D("650"))

    assert rating.amount == D("495.00")
    assert units(rating) == [D("100"), D("400"), D("150")]
    assert subtotals(rating) == [D("100.00"), D("320.00"), D("75.00")]
    assert [step["units"] for step in rating.explanation()] == ["100", "400", "150"]
    assert rating.true_up == 0
    assert rating.quantity == D("650")


def test_volume_check_vector_650_units_is_325():
    rating = rate(volume(), D("650"))

    assert rating.amount == D("325.00")
    assert units(rating) == [D("650")]
    assert rating.steps[0].unit_price == D("0.50")


def test_package_check_vector_1010_units_with_50_free_is_10_packages():
    rating = rate(package(free_units="50"), D("1010"))

    assert rating.amount == D("100.00")
    free, packages = rating.steps
    assert free.units == D("50") and free.subtotal == 0
    assert packages.units == D("10")  # 960 billable units → 10 started packages of 100
    assert packages.subtotal == D("100.00")


def test_percentage_check_vector_minimum_per_transaction():
    # 5.00 → 0.075 + 0.10 = 0.175, raised to 0.25; 1,000.00 → 15.00 + 0.10 = 15.10
    rating = rate_events(percentage(), [D("5.00"), D("1000.00")])

    assert rating.amount == D("15.35")
    assert rating.quantity == D("2")
    assert units(rating) == [D("2")]
    assert "1 raised to the minimum 0.25" in rating.steps[0].description


# --- graduated -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "amount", "tier_units"),
    [
        ("0", "0", []),
        ("1", "1.00", ["1"]),
        ("100", "100.00", ["100"]),  # "up to 100" includes 100: tier 2 is not reached
        ("101", "100.80", ["100", "1"]),  # unit 101 is the first of tier 2
        ("500", "420.00", ["100", "400"]),
        ("501", "420.50", ["100", "400", "1"]),
        ("100.5", "100.40", ["100", "0.5"]),
    ],
)
def test_graduated_tier_boundaries_are_inclusive(quantity, amount, tier_units):
    rating = rate(graduated(), D(quantity))

    assert rating.amount == D(amount)
    assert units(rating) == [D(u) for u in tier_units]


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        ("0", "0"),  # no tier holds a unit: no flat fee at all
        ("1", "11.00"),  # 1 × 1.00 + 10
        ("100", "110.00"),  # tier 2's flat fee is not due at exactly 100
        ("101", "130.80"),  # 110 + 1 × 0.80 + 20
        ("500", "450.00"),  # 110 + 320 + 20
        ("501", "480.50"),  # 450 + 0.50 + 30
    ],
)
def test_graduated_flat_fee_is_due_once_the_tier_holds_a_unit(quantity, amount):
    rating = rate(graduated(FLAT_TIERS), D(quantity))

    assert rating.amount == D(amount)


def test_graduated_at_zero_units_bills_nothing_and_explains_nothing():
    rating = rate(graduated(FLAT_TIERS), D("0"))

    assert rating.amount == 0
    assert rating.steps == []


@pytest.mark.parametrize(
    ("quantity", "amount", "free", "tier_units"),
    [
        ("650", "470.00", "50", ["100", "400", "100"]),  # 600 billable: 100 + 320 + 50
        ("150", "100.00", "50", ["100"]),  # 100 billable: tier 1 only
        ("151", "100.80", "50", ["100", "1"]),
        ("50", "0", "50", []),
        ("30", "0", "30", []),  # below the allowance: only the used part is free
    ],
)
def test_graduated_free_units_come_off_before_the_tiers(quantity, amount, free, tier_units):
    rating = rate(graduated(free_units="50"), D(quantity))

    assert rating.amount == D(amount)
    free_step, *tier_steps = rating.steps
    assert free_step.units == D(free)
    assert free_step.subtotal == 0
    assert [s.units for s in tier_steps] == [D(u) for u in tier_units]


# --- volume ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "amount", "unit_price"),
    [
        ("1", "1.00", "1.00"),
        ("100", "100.00", "1.00"),  # exactly 100: still tier 1's price
        ("101", "80.80", "0.80"),  # 101: every unit at tier 2's price
        ("500", "400.00", "0.80"),
        ("501", "250.50", "0.50"),
        ("650", "325.00", "0.50"),
        ("100.5", "80.40", "0.80"),
    ],
)
def test_volume_prices_every_unit_at_the_tier_reached(quantity, amount, unit_price):
    rating = rate(volume(), D(quantity))

    assert rating.amount == D(amount)
    (step,) = rating.steps
    assert step.units == D(quantity)
    assert step.unit_price == D(unit_price)


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        ("1", "11.00"),
        ("100", "110.00"),  # 100 × 1.00 + 10
        ("101", "100.80"),  # 101 × 0.80 + 20
        ("501", "280.50"),  # 501 × 0.50 + 30
    ],
)
def test_volume_adds_the_reached_tier_flat_fee_only(quantity, amount):
    assert rate(volume(FLAT_TIERS), D(quantity)).amount == D(amount)


def test_volume_at_zero_units_reaches_no_tier_and_costs_nothing():
    rating = rate(volume(FLAT_TIERS), D("0"))

    assert rating.amount == 0
    assert rating.steps == []


@pytest.mark.parametrize(
    ("tiers", "quantity", "amount", "tier_units"),
    [
        (TIERS, "150", "100.00", ["100"]),  # 100 billable: tier 1
        (TIERS, "151", "80.80", ["101"]),  # 101 billable: tier 2
        (FLAT_TIERS, "151", "100.80", ["101"]),  # 101 × 0.80 + 20
        (FLAT_TIERS, "40", "0", []),  # under the allowance: no tier, no flat fee
        (FLAT_TIERS, "50", "0", []),
    ],
)
def test_volume_free_units_come_off_before_the_tier_is_chosen(tiers, quantity, amount, tier_units):
    rating = rate(volume(tiers, free_units="50"), D(quantity))

    assert rating.amount == D(amount)
    free_step, *tier_steps = rating.steps
    assert free_step.units == min(D("50"), D(quantity))
    assert [s.units for s in tier_steps] == [D(u) for u in tier_units]


def test_volume_beyond_a_bounded_last_tier_is_refused():
    with pytest.raises(ValidationError, match="last tier"):
        rate(volume(TIERS[:2]), D("501"))


# --- package ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "packages", "amount"),
    [
        ("0", "0", "0"),
        ("1", "1", "10.00"),
        ("100", "1", "10.00"),
        ("200", "2", "20.00"),  # an exact multiple: no extra package
        ("201", "3", "30.00"),  # one unit over starts a new package
        ("200.000001", "3", "30.00"),
    ],
)
def test_package_bills_every_started_package(quantity, packages, amount):
    rating = rate(package(), D(quantity))

    assert rating.amount == D(amount)
    assert units(rating) == [D(packages)]


@pytest.mark.parametrize(
    ("quantity", "free", "packages", "amount"),
    [
        ("40", "40", "0", "0"),  # under the allowance
        ("50", "50", "0", "0"),
        ("51", "50", "1", "10.00"),
        ("250", "50", "2", "20.00"),
        ("251", "50", "3", "30.00"),
    ],
)
def test_package_free_units_come_off_first(quantity, free, packages, amount):
    rating = rate(package(free_units="50"), D(quantity))

    assert rating.amount == D(amount)
    assert units(rating) == [D(free), D(packages)]


def test_package_size_must_be_above_zero():
    with pytest.raises(ValidationError, match="package size"):
        rate(package(package_size="0"), D("10"))


# --- standard and flat -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "free", "billable", "amount"),
    [
        ("25", "10", "15", "30.00"),
        ("10", "10", "0", "0"),
        ("5", "5", "0", "0"),  # under the allowance
        ("10.5", "10", "0.5", "1.00"),
    ],
)
def test_standard_free_units_come_off_first(quantity, free, billable, amount):
    rating = rate(standard("2.00", free_units="10"), D(quantity))

    assert rating.amount == D(amount)
    assert units(rating) == [D(free), D(billable)]


def test_standard_keeps_twelve_decimal_unit_prices_exactly():
    rating = rate(standard("0.000002000000"), D("1250000"))

    assert rating.amount == D("2.5")
    assert rate(standard("0.000002"), D("2")).amount == D("0.000004")  # not rounded


@pytest.mark.parametrize("quantity", ["0", "1", "12", "1000000.5"])
def test_flat_model_ignores_quantity(quantity):
    rating = rate({"model": "flat", "unit_price": "500.00"}, D(quantity))

    assert rating.amount == D("500.00")
    assert units(rating) == [D("1")]
    assert rating.quantity == D(quantity)


# --- percentage ------------------------------------------------------------------------------


def test_percentage_first_free_events_cost_nothing_in_event_order():
    events = [D("1000.00"), D("5.00")]

    assert rate_events(percentage(free_events="1"), events).amount == D("0.25")
    assert rate_events(percentage(free_events="1"), events[::-1]).amount == D("15.10")
    rating = rate_events(percentage(free_events="3"), events)  # more free events than events
    assert rating.amount == 0
    assert units(rating) == [D("0")]
    assert rating.quantity == D("2")


def test_percentage_max_per_event_caps_each_fee():
    # 1,000.00 → 15.10, capped at 5.00; 100.00 → 1.50 + 0.10 = 1.60
    pricing = percentage(min_per_event=None, max_per_event="5.00")

    rating = rate_events(pricing, [D("1000.00"), D("100.00")])

    assert rating.amount == D("6.60")
    assert "1 capped at 5" in rating.steps[0].description


def test_percentage_fixed_fee_without_minimum_applies_to_every_event():
    # 2.9 % + 0.30: 10.00 → 0.59, 0.00 → 0.30, 100.00 → 3.20
    pricing = {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30"}

    assert rate_events(pricing, [D("10.00"), D("0.00"), D("100.00")]).amount == D("4.09")


def test_percentage_keeps_sub_cent_fees_exactly():
    pricing = {"model": "percentage", "rate": "1.5"}

    assert rate_events(pricing, [D("0.01")]).amount == D("0.00015")


def test_percentage_with_no_events_costs_nothing():
    rating = rate_events(percentage(), [])

    assert rating.amount == 0
    assert rating.quantity == 0


def test_percentage_min_and_max_per_event_together():
    # 5.00 → 0.175 → 0.25; 100.00 → 1.60; 1,000.00 → 15.10 → 5.00
    pricing = percentage(max_per_event="5.00")

    assert rate_events(pricing, [D("5.00"), D("100.00"), D("1000.00")]).amount == D("6.85")


# --- min_amount / max_amount -----------------------------------------------------------------


def test_min_amount_tops_up_the_shortfall_as_a_final_true_up_step():
    rating = rate(standard(min_amount="50.00"), D("30"))

    assert rating.amount == D("50.00")
    assert rating.true_up == D("20.00")
    last = rating.steps[-1]
    assert last.description.startswith("minimum commitment 50")
    assert last.description.endswith("true-up")
    assert last.subtotal == D("20.00")
    assert last.units == 0
    assert sum(subtotals(rating)) == rating.amount


@pytest.mark.parametrize("quantity", ["50", "80"])
def test_min_amount_at_or_above_the_minimum_adds_no_true_up(quantity):
    rating = rate(standard(min_amount="50.00"), D(quantity))

    assert rating.amount == D(quantity)
    assert rating.true_up == 0
    assert len(rating.steps) == 1


def test_min_amount_applies_to_graduated_and_percentage_charges():
    graduated_rating = rate(graduated(min_amount="50"), D("30"))
    assert graduated_rating.amount == D("50")
    assert graduated_rating.true_up == D("20")

    events_rating = rate_events(percentage(min_amount="20.00"), [D("5.00"), D("1000.00")])
    assert events_rating.amount == D("20.00")
    assert events_rating.true_up == D("4.65")  # 20.00 − 15.35


def test_min_amount_with_zero_usage_bills_the_whole_minimum():
    rating = rate(graduated(min_amount="50"), D("0"))

    assert rating.amount == D("50")
    assert rating.true_up == D("50")


def test_max_amount_caps_the_period_amount():
    rating = rate(standard(max_amount="150.00"), D("200"))

    assert rating.amount == D("150.00")
    assert rating.true_up == 0
    assert rating.steps[-1].subtotal == D("-50.00")
    assert sum(subtotals(rating)) == rating.amount


def test_max_amount_not_reached_adds_no_step():
    rating = rate(standard(max_amount="150.00"), D("150"))

    assert rating.amount == D("150.00")
    assert len(rating.steps) == 1


@pytest.mark.parametrize(
    ("quantity", "amount", "true_up"),
    [
        ("0", "50.00", "50.00"),
        ("30", "50.00", "20.00"),
        ("100", "100.00", "0"),
        ("200", "150.00", "0"),
    ],
)
def test_min_and_max_amount_together(quantity, amount, true_up):
    rating = rate(standard(min_amount="50.00", max_amount="150.00"), D(quantity))

    assert rating.amount == D(amount)
    assert rating.true_up == D(true_up)
    assert sum(subtotals(rating)) == rating.amount


# --- snapshots and explanations --------------------------------------------------------------


def test_snapshot_shaped_tiers_rate_like_the_plain_ones():
    # Charge.pricing() snapshots str() of 12-place DecimalFields and a "from" per tier
    tiers = [
        {
            "from": "0E-6",
            "up_to": "100.000000",
            "unit_price": "1.000000000000",
            "flat_fee": "0E-12",
        },
        {
            "from": "100.000000",
            "up_to": "500.000000",
            "unit_price": "0.800000000000",
            "flat_fee": "0E-12",
        },
        {"from": "500.000000", "up_to": None, "unit_price": "0.500000000000", "flat_fee": "0E-12"},
    ]

    assert rate(graduated(tiers), D("650.000000")).amount == D("495.00")
    assert rate(volume(tiers), D("650.000000")).amount == D("325.00")


def test_explanation_never_shows_exponent_notation():
    tiers = [
        {"up_to": "100", "unit_price": "0E-12", "flat_fee": "0E-12"},  # str() of a 0 price field
        {"up_to": None, "unit_price": "1.000000000000", "flat_fee": "0E-12"},
    ]
    rating = rate(graduated(tiers, free_units="1E+1"), D("1.5E+2"))

    assert rating.amount == D("40")
    lines = rating.explanation()
    values = [value for line in lines for value in line.values()]
    assert not [value for value in values if "E" in value]
    assert [line["units"] for line in lines] == ["10", "100", "40"]


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("pricing", [{"model": "tiered"}, {"model": None}, {}])
def test_unknown_model_is_refused(pricing):
    with pytest.raises(ValidationError, match="Unknown charge model"):
        rate(pricing, D("1"))


@pytest.mark.parametrize(
    "pricing",
    [
        standard(),
        graduated(),
        volume(),
        package(),
        {"model": "flat", "unit_price": "1"},
    ],
)
def test_a_net_negative_quantity_rates_as_zero_units_and_says_so(pricing):
    rating = rate(pricing, D("-1000"))

    assert rating.amount == rate(pricing, D(0)).amount
    assert rating.quantity == D("-1000")
    assert rating.true_up == 0
    assert rating.explanation()[0] == {
        "description": "net usage −1,000 is below zero: billed as 0",
        "units": "-1000",
        "unit_price": "0",
        "flat_fee": "0",
        "subtotal": "0",
    }


def test_a_net_negative_standard_period_costs_exactly_zero():
    rating = rate(standard("0.000002"), D("-1000000000"))

    assert rating.amount == D(0)
    assert [step["description"] for step in rating.explanation()] == [
        "net usage −1,000,000,000 is below zero: billed as 0",
        "0 × 0.000002",
    ]
    assert subtotals(rating) == [D(0), D(0)]


def test_a_net_negative_graduated_period_reaches_no_tier():
    rating = rate(graduated(FLAT_TIERS, free_units="10"), D("-0.5"))

    assert rating.amount == D(0)
    assert [step.description for step in rating.steps] == [
        "net usage −0.5 is below zero: billed as 0",
        "free allowance (10 units)",
    ]
    assert units(rating) == [D("-0.5"), D(0)]


def test_a_net_negative_period_still_owes_the_minimum_commitment():
    rating = rate(standard(min_amount="50.00", max_amount="80.00"), D("-20"))

    assert rating.amount == D("50.00")
    assert rating.true_up == D("50.00")
    assert [step.description for step in rating.steps] == [
        "net usage −20 is below zero: billed as 0",
        "0 × 1",
        "minimum commitment 50: true-up",
    ]


def test_a_flat_fee_is_due_whatever_the_net_quantity():
    rating = rate({"model": "flat", "unit_price": "99.00"}, D("-3"))

    assert rating.amount == D("99.00")
    assert subtotals(rating) == [D(0), D("99.00")]


def test_a_percentage_event_below_zero_is_rated_as_an_amount_of_zero():
    # 100 → 1.5 % × 100 + 0.10 = 1.60; −50 → 0 × 1.5 % + 0.10 = 0.10, raised to 0.25: 1.85
    rating = rate_events(percentage(), [D("100"), D("-50")])

    assert rating.amount == D("1.85")
    assert rating.quantity == D(2)
    assert [step["description"] for step in rating.explanation()] == [
        "2 events: 1.5 % of 100 + 0.1 per event (1 below zero rated as 0, 1 raised to the "
        "minimum 0.25)"
    ]


def test_a_free_percentage_event_below_zero_stays_free():
    rating = rate_events(percentage(free_events="1"), [D("-50"), D("100")])

    assert rating.amount == D("1.60")
    assert "below zero" not in rating.steps[0].description


@pytest.mark.parametrize("quantity", [1.5, 0.0, 10])
def test_non_decimal_quantity_is_a_type_error(quantity):
    with pytest.raises(TypeError, match="Decimal"):
        rate(standard(), quantity)


def test_float_event_amount_is_a_type_error():
    with pytest.raises(TypeError, match="Decimal"):
        rate_events(percentage(), [D("1.00"), 2.5])


def test_rate_refuses_a_percentage_charge():
    with pytest.raises(ValidationError, match="rate_events"):
        rate(percentage(), D("10"))


@pytest.mark.parametrize(
    "pricing", [standard(), graduated(), volume(), package(), {"model": "flat", "unit_price": "1"}]
)
def test_rate_events_refuses_a_non_percentage_charge(pricing):
    with pytest.raises(ValidationError, match="percentage charges only"):
        rate_events(pricing, [D("1.00")])


@pytest.mark.parametrize("pricing", [graduated([]), volume([]), {"model": "graduated"}])
def test_tiered_charge_without_tiers_is_refused(pricing):
    with pytest.raises(ValidationError, match="at least one tier"):
        rate(pricing, D("1"))


# --- inputs the engine refuses rather than mis-price -------------------------------------------


def test_graduated_beyond_a_bounded_last_tier_is_refused():
    # rate() returns 100.00 for 150 units: 50 units are never billed
    with pytest.raises(ValidationError):
        rate(graduated(TIERS[:1]), D("150"))


def test_graduated_with_an_unbounded_middle_tier_is_refused():
    tiers = [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]
    # rate() returns 20 for 10 units
    with pytest.raises(ValidationError):
        rate(graduated(tiers), D("10"))


def test_graduated_with_descending_tiers_is_refused():
    tiers = [
        {"up_to": "100", "unit_price": "1"},
        {"up_to": "50", "unit_price": "2"},
        {"up_to": None, "unit_price": "1"},
    ]
    # rate() returns steps with units 100, -50, 150 (amount 150)
    with pytest.raises(ValidationError):
        rate(graduated(tiers), D("200"))


def test_large_products_are_not_rounded():
    quantity, price = D("123456789.123456"), D("1234.123456789012")  # within field precision
    with localcontext() as ctx:
        ctx.prec = 100
        exact = quantity * price  # 152360919357.111617483812265472

    assert rate(standard(str(price)), quantity).amount == exact


def test_package_count_is_a_ceiling_at_large_quantities():
    quantity = D("3000000000000000000000.000001")  # 22 integer digits: QUANTITY_MAX_DIGITS 28

    rating = rate(package(package_size="3", package_price="1"), quantity)

    assert rating.steps[-1].units == D("1000000000000000000001")


@pytest.mark.parametrize("quantity", ["Infinity", "NaN"])
def test_non_finite_quantity_is_refused(quantity):
    with pytest.raises(ValidationError):
        rate(standard(), D(quantity))


@pytest.mark.parametrize("amount", ["Infinity", "NaN"])
def test_non_finite_event_amount_is_refused(amount):
    with pytest.raises(ValidationError, match=f"Cannot rate an event amount of {amount}"):
        rate_events(percentage(), [D("1.00"), D(amount)])


def test_percentage_min_per_event_above_max_is_refused():
    pricing = percentage(min_per_event="5.00", max_per_event="1.00")
    with pytest.raises(ValidationError):
        rate_events(pricing, [D("1.00")])


def test_min_amount_above_max_amount_is_refused():
    with pytest.raises(ValidationError):
        rate(standard(min_amount="10", max_amount="5"), D("100"))


# --- properties ------------------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None)

# Bounds keep the hand formulas simple (the engine itself is exact at any size, see above):
# quantity < 10^6 with 6 places × price ≤ 100 with 12 places < 10^8 with 18 places.
QUANTITIES = st.decimals(
    min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False
)
PRICES = st.decimals(min_value=0, max_value=100, places=12, allow_nan=False, allow_infinity=False)
FREE_UNITS = st.one_of(
    st.none(),
    st.decimals(min_value=0, max_value=10**4, places=6, allow_nan=False, allow_infinity=False),
)
PACKAGE_SIZES = st.one_of(
    st.integers(min_value=1, max_value=10**4).map(Decimal),
    st.decimals(
        min_value=D("0.000001"), max_value=10**4, places=6, allow_nan=False, allow_infinity=False
    ),
)
EVENT_AMOUNTS = st.lists(
    st.decimals(min_value=0, max_value=10**5, places=6, allow_nan=False, allow_infinity=False),
    max_size=40,
)


def s(value: Decimal | None) -> str | None:
    """A pricing dict's decimal string (None stays None)."""
    return None if value is None else f"{value:f}"


@st.composite
def tier_lists(draw, max_tiers: int = 5) -> list[dict]:
    bounds = sorted(
        draw(
            st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=max_tiers - 1)
        )
    )
    return [
        {"up_to": s(up_to), "unit_price": s(draw(PRICES)), "flat_fee": s(draw(PRICES))}
        for up_to in [*map(Decimal, bounds), None]
    ]


@st.composite
def tiered_cases(draw) -> tuple[list[dict], Decimal]:
    """Tiers and a quantity, often on or next to a tier boundary."""
    tiers = draw(tier_lists())
    edges = [D(t["up_to"]) for t in tiers if t["up_to"] is not None]
    near = [e + delta for e in edges for delta in (D("-1"), D("-0.000001"), 0, D("0.000001"), 1)]
    quantity = draw(st.one_of(QUANTITIES, st.sampled_from(near))) if near else draw(QUANTITIES)
    return tiers, max(quantity, D(0))


def billable_of(quantity: Decimal, free: Decimal | None) -> Decimal:
    return max(quantity - (free or 0), D(0))


def graduated_by_hand(tiers: list[dict], billable: Decimal) -> Decimal:
    total, lower = D(0), D(0)
    for tier in tiers:
        up_to = None if tier["up_to"] is None else D(tier["up_to"])
        in_tier = max((billable if up_to is None else min(billable, up_to)) - lower, D(0))
        if in_tier > 0:
            total += in_tier * D(tier["unit_price"]) + D(tier["flat_fee"])
        lower = up_to
    return total


def reached_tier(tiers: list[dict], billable: Decimal) -> dict:
    return next(t for t in tiers if t["up_to"] is None or billable <= D(t["up_to"]))


def exactly(compute):
    """Evaluate a hand formula with far more precision than any input needs."""
    with localcontext() as ctx:
        ctx.prec = 100
        return compute()


@SETTINGS
@given(case=tiered_cases(), other=QUANTITIES, free=FREE_UNITS)
def test_graduated_total_never_decreases_as_quantity_grows(case, other, free):
    tiers, quantity = case
    low, high = sorted([quantity, other])
    pricing = graduated(tiers, free_units=s(free))

    assert rate(pricing, low).amount <= rate(pricing, high).amount


@SETTINGS
@given(case=tiered_cases(), free=FREE_UNITS)
def test_graduated_total_is_the_sum_of_its_tier_parts(case, free):
    tiers, quantity = case
    rating = rate(graduated(tiers, free_units=s(free)), quantity)

    tier_steps = rating.steps[1:] if free else rating.steps
    assert rating.amount == sum(subtotals(rating))
    assert sum(s.units for s in tier_steps) == billable_of(quantity, free)
    for step in tier_steps:
        assert step.units > 0
        assert step.subtotal == step.units * step.unit_price + step.flat_fee
    if free:
        assert rating.steps[0].units == min(free, quantity)
    assert rating.amount == exactly(lambda: graduated_by_hand(tiers, billable_of(quantity, free)))


@SETTINGS
@given(case=tiered_cases(), free=FREE_UNITS)
def test_volume_is_quantity_times_the_reached_tier_price_plus_its_flat_fee(case, free):
    tiers, quantity = case
    rating = rate(volume(tiers, free_units=s(free)), quantity)

    billable = billable_of(quantity, free)
    if billable == 0:
        assert rating.amount == 0
        return
    tier = reached_tier(tiers, billable)
    expected = exactly(lambda: billable * D(tier["unit_price"]) + D(tier["flat_fee"]))
    assert rating.amount == expected
    assert rating.steps[-1].units == billable
    assert rating.steps[-1].unit_price == D(tier["unit_price"])


@SETTINGS
@given(quantity=QUANTITIES, size=PACKAGE_SIZES, price=PRICES, free=FREE_UNITS)
def test_package_count_is_the_ceiling_of_billable_units_over_size(quantity, size, price, free):
    pricing = package(package_size=s(size), package_price=s(price), free_units=s(free))
    rating = rate(pricing, quantity)

    packages = rating.steps[-1].units
    billable = billable_of(quantity, free)
    assert packages == packages.to_integral_value()
    assert packages * size >= billable > (packages - 1) * size
    assert rating.amount == exactly(lambda: packages * price)


@SETTINGS
@given(quantity=QUANTITIES, price=PRICES, free=FREE_UNITS)
def test_standard_is_billable_units_times_unit_price_exactly(quantity, price, free):
    rating = rate(standard(s(price), free_units=s(free)), quantity)

    assert rating.amount == exactly(lambda: billable_of(quantity, free) * price)


@st.composite
def percentage_pricings(draw) -> dict:
    low, high = sorted([draw(PRICES), draw(PRICES)])
    return {
        "model": "percentage",
        "rate": s(draw(PRICES)),  # percent: 0–100 with 12 places
        "fixed_fee": s(draw(st.one_of(st.none(), PRICES))),
        "free_events": s(draw(st.one_of(st.none(), st.integers(0, 10).map(Decimal)))),
        "min_per_event": s(draw(st.one_of(st.none(), st.just(low)))),
        "max_per_event": s(draw(st.one_of(st.none(), st.just(high)))),
    }


def percentage_by_hand(pricing: dict, amounts: list[Decimal]) -> Decimal:
    rate_ = D(pricing["rate"]) / 100
    fixed = D(pricing["fixed_fee"] or "0")
    low, high = (
        None if pricing[k] is None else D(pricing[k]) for k in ("min_per_event", "max_per_event")
    )
    total = D(0)
    for amount in amounts[int(pricing["free_events"] or 0) :]:
        fee = amount * rate_ + fixed
        if low is not None:
            fee = max(fee, low)
        if high is not None:
            fee = min(fee, high)
        total += fee
    return total


@SETTINGS
@given(pricing=percentage_pricings(), amounts=EVENT_AMOUNTS)
def test_percentage_fees_respect_the_per_event_min_and_max(pricing, amounts):
    rating = rate_events(pricing, amounts)

    charged = max(len(amounts) - int(pricing["free_events"] or 0), 0)
    assert rating.steps[0].units == charged
    if pricing["min_per_event"] is not None:
        assert rating.amount >= charged * D(pricing["min_per_event"])
    if pricing["max_per_event"] is not None:
        assert rating.amount <= charged * D(pricing["max_per_event"])
    assert rating.amount == exactly(lambda: percentage_by_hand(pricing, amounts))


@SETTINGS
@given(quantity=QUANTITIES, price=PRICES, bounds=st.tuples(PRICES, PRICES), which=st.integers(0, 3))
def test_min_and_max_amount_clamp_the_period_amount(quantity, price, bounds, which):
    low, high = sorted(bounds)
    minimum, maximum = (low if which & 1 else None), (high * 1000 if which & 2 else None)
    rating = rate(standard(s(price), min_amount=s(minimum), max_amount=s(maximum)), quantity)

    raw = exactly(lambda: quantity * price)
    capped = raw if maximum is None else min(raw, maximum)
    assert rating.amount == (capped if minimum is None else max(capped, minimum))
    assert rating.true_up == (0 if minimum is None else max(minimum - capped, 0))
    assert rating.amount == sum(subtotals(rating))


@st.composite
def any_charges(draw) -> tuple[dict, object]:
    """Any model's pricing (optionally bounded) and its input: a quantity or event amounts."""
    model = draw(st.sampled_from(["flat", "standard", "graduated", "volume", "package", "percent"]))
    bounds = sorted([draw(PRICES) * 100, draw(PRICES) * 100])
    extra = {
        "free_units": s(draw(FREE_UNITS)),
        "min_amount": s(draw(st.one_of(st.none(), st.just(bounds[0])))),
        "max_amount": s(draw(st.one_of(st.none(), st.just(bounds[1])))),
    }
    if model == "percent":
        return {**draw(percentage_pricings()), **extra}, draw(EVENT_AMOUNTS)
    if model in {"flat", "standard"}:
        pricing = {"model": model, "unit_price": s(draw(PRICES))}
    elif model == "package":
        pricing = package(package_size=s(draw(PACKAGE_SIZES)), package_price=s(draw(PRICES)))
    else:
        pricing = {"model": model, "tiers": draw(tier_lists())}
    return {**pricing, **extra}, draw(QUANTITIES)


@SETTINGS
@given(charge=any_charges())
def test_the_engine_never_returns_a_float(charge):
    pricing, given_input = charge
    if pricing["model"] == "percentage":
        rating = rate_events(pricing, given_input)
    else:
        rating = rate(pricing, given_input)

    assert isinstance(rating, Rating)
    for value in (rating.quantity, rating.amount, rating.true_up):
        assert type(value) is Decimal
    for step in rating.steps:
        assert isinstance(step, RatingStep)
        for value in (step.units, step.unit_price, step.flat_fee, step.subtotal):
            assert type(value) is Decimal
    for line in rating.explanation():
        assert all(type(value) is str and "E" not in value for value in line.values())
    assert rating.amount == sum(subtotals(rating))


# --- below zero: any net-negative quantity rates as zero units, never raises --------------------

NEGATIVE_QUANTITIES = st.decimals(
    max_value=D("-0.000001"), min_value=-(10**20), places=6, allow_nan=False, allow_infinity=False
)


@SETTINGS
@given(charge=any_charges(), quantity=NEGATIVE_QUANTITIES)
def test_a_negative_quantity_is_rated_exactly_as_zero_units(charge, quantity):
    pricing, _ = charge
    if pricing["model"] == "percentage":
        return  # rated from event amounts: see the next property
    rating = rate(pricing, quantity)

    at_zero = rate(pricing, D(0))
    assert rating.amount == at_zero.amount
    assert rating.true_up == at_zero.true_up
    assert rating.steps[0].description.startswith("net usage −")
    assert rating.steps[0].description.endswith(" is below zero: billed as 0")
    assert rating.steps[1:] == at_zero.steps
    assert rating.amount == sum(subtotals(rating))
    if pricing["model"] != "flat" and pricing.get("min_amount") is None:
        assert rating.amount == D(0)


@SETTINGS
@given(charge=any_charges())
def test_a_non_negative_quantity_never_mentions_below_zero(charge):
    pricing, given_input = charge
    if pricing["model"] == "percentage":
        rating = rate_events(pricing, given_input)
    else:
        rating = rate(pricing, given_input)

    assert not any("below zero" in step.description for step in rating.steps)


@SETTINGS
@given(
    pricing=percentage_pricings(),
    amounts=st.lists(
        st.decimals(
            min_value=-(10**5), max_value=10**5, places=6, allow_nan=False, allow_infinity=False
        ),
        max_size=40,
    ),
)
def test_percentage_rates_an_amount_below_zero_as_zero(pricing, amounts):
    rating = rate_events(pricing, amounts)

    clamped = [max(amount, D(0)) for amount in amounts]
    assert rating.amount == rate_events(pricing, clamped).amount
    assert rating.amount == exactly(lambda: percentage_by_hand(pricing, clamped))
