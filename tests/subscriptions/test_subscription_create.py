"""subscription_create: snapshot the prices, lay out the billing schedule, refuse bad contracts."""

from decimal import Decimal

import pytest

from catalog.models import Charge, Plan
from core.errors import ValidationError
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem
from subscriptions.services import ItemSpec, subscription_create
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    day,
    hybrid_plan,
    subscribe,
)


def written() -> tuple[int, int, int]:
    return (
        Subscription.objects.count(),
        SubscriptionItem.objects.count(),
        BillingPeriod.objects.count(),
    )


def schedule(subscription) -> list[tuple[str, str]]:
    return [
        (p.start_date.isoformat(), p.end_date.isoformat())
        for p in subscription.billing_periods.order_by("sequence")
    ]


@pytest.mark.parametrize(
    ("start", "expected", "end"),
    [
        (
            "2027-01-31",
            [
                ("2027-01-31", "2027-02-28"),
                ("2027-02-28", "2027-03-31"),
                ("2027-03-31", "2027-04-30"),
            ],
            "2027-04-30",
        ),
        (
            "2028-01-31",
            [
                ("2028-01-31", "2028-02-29"),
                ("2028-02-29", "2028-03-31"),
                ("2028-03-31", "2028-04-30"),
            ],
            "2028-04-30",
        ),
    ],
)
def test_a_jan_31_monthly_term_clamps_to_month_ends_and_returns_to_the_31st(
    db, start, expected, end
):
    # When
    subscription = subscribe(
        customer=CustomerFactory(), plan=hybrid_plan(), start=start, term_months=3
    )

    # Then
    assert schedule(subscription) == expected
    assert list(subscription.billing_periods.values_list("sequence", flat=True)) == [0, 1, 2]
    assert subscription.end_date == day(end)


def test_a_quarterly_plan_gets_one_period_per_quarter(db):
    plan = PlanFactory(billing_interval_months=Plan.Interval.QUARTER)
    ChargeFactory(plan=plan, unit_price=Decimal("3000"))

    subscription = subscribe(
        customer=CustomerFactory(), plan=plan, start="2026-01-15", term_months=12
    )

    assert subscription.billing_interval_months == 3
    assert schedule(subscription) == [
        ("2026-01-15", "2026-04-15"),
        ("2026-04-15", "2026-07-15"),
        ("2026-07-15", "2026-10-15"),
        ("2026-10-15", "2027-01-15"),
    ]
    assert {p.advance_amount for p in subscription.billing_periods.all()} == {Decimal("3000.00")}


def test_items_default_to_the_catalog_prices_and_quantities(db):
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan())

    assert [
        (i.name, i.billing_timing, i.quantity, i.unit_name, Decimal(i.pricing["unit_price"]))
        for i in subscription.items.all()
    ] == [
        ("Platform fee", "in_advance", Decimal("1"), "unit", Decimal("500")),
        ("Seats", "in_advance", Decimal("5"), "seat", Decimal("25")),
        ("API calls", "in_arrears", Decimal("0"), "call", Decimal("0.002")),
    ]


def test_advance_amount_is_the_sum_of_rounded_fixed_fees_in_advance(db):
    # Given fixed fees of 10.005 and 3 × 3.335 = 10.005 (each rounds to 10.01), a fee in arrears
    # and a usage charge, neither of which is billed in advance
    plan = PlanFactory()
    platform = ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("10.005"))
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=Decimal("3.335"))
    support = ChargeFactory(
        plan=plan, name="Support", billing_timing=Charge.Timing.IN_ARREARS, unit_price=Decimal(50)
    )
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.002"),
    )

    # When
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_acme",
        start_date=day("2026-01-15"),
        term_months=2,
        items=[
            ItemSpec(charge=platform, quantity=Decimal("1")),
            ItemSpec(charge=seats, quantity=Decimal("3")),
            ItemSpec(charge=support, quantity=Decimal("1")),
            ItemSpec(charge=calls, quantity=Decimal("0")),
        ],
    )

    # Then 10.01 + 10.01 (rounding the unrounded sum 20.010 would give 20.01)
    assert [p.advance_amount for p in subscription.billing_periods.all()] == [
        Decimal("20.02"),
        Decimal("20.02"),
    ]


def test_a_negotiated_price_and_name_are_snapshotted(db):
    plan = hybrid_plan()
    seats = plan.charges.get(name="Seats")

    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_acme",
        start_date=day("2026-01-15"),
        term_months=1,
        items=[
            ItemSpec(
                charge=seats,
                quantity=Decimal("12"),
                unit_price=Decimal("22.50"),
                name="Seats (negotiated)",
            )
        ],
    )

    item = subscription.items.get()
    assert (item.name, item.quantity, item.pricing) == (
        "Seats (negotiated)",
        Decimal("12"),
        {"model": "standard", "unit_price": "22.50"},
    )
    assert subscription.billing_periods.get().advance_amount == Decimal("270.00")


@pytest.mark.parametrize("external_id", ["sub_acme", "  sub_acme  "])
def test_a_duplicate_external_id_is_refused_and_nothing_is_written(db, external_id):
    # Given
    plan = hybrid_plan()
    subscribe(customer=CustomerFactory(), plan=plan, external_id="sub_acme")
    before = written()

    # When another subscription claims the same id
    with pytest.raises(ValidationError) as caught:
        subscribe(customer=CustomerFactory(), plan=plan, external_id=external_id)

    # Then
    assert caught.value.message == "A subscription with external id 'sub_acme' already exists."
    assert written() == before == (1, 3, 3)


def test_a_negative_quantity_is_refused_and_nothing_is_written(db):
    plan = hybrid_plan()
    seats = plan.charges.get(name="Seats")

    with pytest.raises(ValidationError) as caught:
        subscription_create(
            customer=CustomerFactory(),
            plan=plan,
            external_id="sub_acme",
            start_date=day("2026-01-15"),
            term_months=3,
            items=[ItemSpec(charge=seats, quantity=Decimal("-1"))],
        )

    assert caught.value.message == "The quantity of 'Seats' cannot be negative."
    assert written() == (0, 0, 0)


def test_a_negative_price_is_refused_and_nothing_is_written(db):
    # (checked while the items are written: the subscription row must be rolled back too)
    plan = hybrid_plan()
    seats = plan.charges.get(name="Seats")

    with pytest.raises(ValidationError) as caught:
        subscription_create(
            customer=CustomerFactory(),
            plan=plan,
            external_id="sub_acme",
            start_date=day("2026-01-15"),
            term_months=3,
            items=[ItemSpec(charge=seats, quantity=Decimal("2"), unit_price=Decimal("-0.01"))],
        )

    assert caught.value.message == "The price of 'Seats' cannot be negative."
    assert written() == (0, 0, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"external_id": "   "},
            "A subscription needs an external id (the id usage events carry).",
        ),
        (
            {"term_months": 0},
            "The term (0 months) must be a positive multiple of the plan's billing interval "
            "(1 months).",
        ),
    ],
)
def test_an_incomplete_contract_is_refused(db, change, message):
    fields = {
        "customer": CustomerFactory(),
        "plan": hybrid_plan(),
        "external_id": "sub_acme",
        "start_date": day("2026-01-15"),
        "term_months": 3,
        **change,
    }

    with pytest.raises(ValidationError) as caught:
        subscription_create(**fields)

    assert caught.value.message == message
    assert written() == (0, 0, 0)


def test_a_term_that_is_not_whole_quarters_is_refused(db):
    plan = PlanFactory(billing_interval_months=Plan.Interval.QUARTER)
    ChargeFactory(plan=plan)

    with pytest.raises(ValidationError) as caught:
        subscribe(customer=CustomerFactory(), plan=plan, term_months=4)

    assert caught.value.message == (
        "The term (4 months) must be a positive multiple of the plan's billing interval (3 months)."
    )
    assert written() == (0, 0, 0)


def test_a_charge_of_another_plan_is_refused(db):
    plan, other = hybrid_plan(), hybrid_plan()
    foreign = other.charges.get(name="Seats")

    with pytest.raises(ValidationError) as caught:
        subscription_create(
            customer=CustomerFactory(),
            plan=plan,
            external_id="sub_acme",
            start_date=day("2026-01-15"),
            term_months=3,
            items=[ItemSpec(charge=foreign, quantity=Decimal("1"))],
        )

    assert caught.value.message == f"Charge '{foreign}' does not belong to plan '{plan.code}'."
    assert written() == (0, 0, 0)


def test_a_plan_in_another_currency_is_refused(db):
    customer = CustomerFactory(currency="EUR")
    plan = hybrid_plan()  # USD

    with pytest.raises(ValidationError) as caught:
        subscribe(customer=customer, plan=plan)

    assert caught.value.message == (
        f"Plan '{plan.code}' is sold in USD but {customer} is billed in EUR: choose a plan in "
        "the customer's currency."
    )
    assert written() == (0, 0, 0)
