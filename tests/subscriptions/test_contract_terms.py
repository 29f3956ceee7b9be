"""subscription_create with a quote's contract terms: net prices beside list prices, ramps,
one-time fees, a billing interval of the quote's and prepaid credits granted at creation."""

import datetime as dt
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import rating
from catalog.models import Charge, ChargeTier
from core.errors import ValidationError
from core.money import round_money
from core.periods import add_months
from reporting.selectors import subscription_mrr
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionItem
from subscriptions.services import CreditSpec, ItemSpec, PhaseSpec, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, MetricFactory, PlanFactory, day


def seats_plan(*, interval: int = 1):
    """Seats at $40.00 list (in advance) and API calls at $0.002 (in arrears)."""
    plan = PlanFactory(billing_interval_months=interval)
    seats = ChargeFactory(
        plan=plan, name="Seats", unit_price=Decimal("40.00"), unit_name="seat", position=0
    )
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.002"),
        unit_name="call",
        default_quantity=Decimal("0"),
        position=1,
    )
    return plan, seats, calls


def standard(price: str) -> dict:
    return {"model": "standard", "unit_price": price}


def create(plan, items, *, start="2026-01-01", term_months=12, **kwargs) -> Subscription:
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id=kwargs.pop("external_id", "sub_ramp"),
        start_date=day(start),
        term_months=term_months,
        items=items,
        **kwargs,
    )


def written() -> tuple[int, int, int, int]:
    return (
        Subscription.objects.count(),
        SubscriptionItem.objects.count(),
        BillingPeriod.objects.count(),
        PrepaidCredit.objects.count(),
    )


def advance_amounts(subscription) -> list[Decimal]:
    return list(
        subscription.billing_periods.order_by("sequence").values_list("advance_amount", flat=True)
    )


# --- net terms beside list terms ----------------------------------------------------------------


def test_the_item_keeps_net_terms_to_rate_and_list_terms_and_discount_to_show(db):
    plan, seats, _ = seats_plan()

    subscription = create(
        plan,
        [
            ItemSpec(
                charge=seats,
                quantity=Decimal("100"),
                pricing=standard("36.00"),
                discount_percent=Decimal("10"),
            )
        ],
    )

    item = subscription.items.get()
    assert item.pricing == {"model": "standard", "unit_price": "36.00"}
    assert item.list_pricing == {"model": "standard", "unit_price": "40.00"}
    assert item.discount_percent == Decimal("10") and item.discount_amount is None
    assert item.billing_timing == "in_advance" and item.phases == []
    # 100 seats × $36.00 net = $3,600.00 a month
    assert advance_amounts(subscription) == [Decimal("3600.00")] * 12


@pytest.mark.parametrize(
    ("pricing", "message"),
    [
        ({"model": "bespoke"}, "'Seats': Unknown charge model 'bespoke'."),
        (
            {"model": "graduated", "tiers": []},
            "'Seats' is a standard charge: its price terms cannot be graduated; keep the "
            "charge's model.",
        ),
        (standard("-1"), "The unit price of 'Seats' cannot be negative."),
        ({"model": "standard", "unit_price": "40", "min_amount": "-5"}, "The min amount of "),
    ],
)
def test_net_terms_the_engine_cannot_read_are_refused_naming_the_item(db, pricing, message):
    plan, seats, _ = seats_plan()

    with pytest.raises(ValidationError) as error:
        create(plan, [ItemSpec(charge=seats, quantity=Decimal("1"), pricing=pricing)])

    assert error.value.message.startswith(message)
    assert written() == (0, 0, 0, 0)


def test_negotiated_tiers_with_a_gap_are_refused(db):
    plan, _, calls = seats_plan()
    calls.charge_model = Charge.Model.GRADUATED
    calls.save()
    ChargeTier.objects.create(charge=calls, up_to=None, unit_price=Decimal("0.002"))
    tiers = [
        {"from": "0", "up_to": "1000", "unit_price": "0.002", "flat_fee": "0"},
        {"from": "2000", "up_to": None, "unit_price": "0.001", "flat_fee": "0"},
    ]

    with pytest.raises(ValidationError) as error:
        create(
            plan,
            [
                ItemSpec(
                    charge=calls,
                    quantity=Decimal(0),
                    pricing={"model": "graduated", "tiers": tiers},
                )
            ],
        )

    assert error.value.message == (
        "The tiers of 'API calls': Tier 2 starts at 2,000 but the tier before ends at 1,000: "
        "units in between would have no price."
    )
    assert written() == (0, 0, 0, 0)


# --- ramps --------------------------------------------------------------------------------------


def ramp(*phases: tuple[str, str, str, str]) -> list[PhaseSpec]:
    return [PhaseSpec(day(a), day(b), Decimal(q), standard(p)) for a, b, q, p in phases]


def test_advance_amount_follows_a_ramp_and_so_does_mrr(db):
    # Given 24 months: 100 seats at $36.00 net for a year, then 150 at $38.00
    plan, seats, _ = seats_plan()

    subscription = create(
        plan,
        [
            ItemSpec(
                charge=seats,
                quantity=Decimal("100"),
                pricing=standard("36.00"),
                phases=ramp(
                    ("2026-01-01", "2027-01-01", "100", "36.00"),
                    ("2027-01-01", "2028-01-01", "150", "38.00"),
                ),
            )
        ],
        term_months=24,
    )

    # Then months 1–12 bill 100 × 36.00 = 3,600.00 and months 13–24 bill 150 × 38.00 = 5,700.00
    assert advance_amounts(subscription) == [Decimal("3600.00")] * 12 + [Decimal("5700.00")] * 12
    item = subscription.items.get()
    assert item.phases[1] == {
        "start": "2027-01-01",
        "end": "2028-01-01",
        "quantity": "150",
        "pricing": {"model": "standard", "unit_price": "38.00"},
    }
    assert item.terms_on(day("2026-12-31")) == (standard("36.00"), Decimal("100"))
    assert item.terms_on(day("2027-01-01")) == (standard("38.00"), Decimal("150"))
    # MRR is the terms in force: 3,600.00 in the first year, 5,700.00 in the second
    assert subscription_mrr(subscription, on=day("2026-06-15")) == Decimal("3600")
    with time_machine.travel("2027-03-01 12:00Z", tick=False):
        assert subscription_mrr(subscription) == Decimal("5700")


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        (
            (("2026-01-01", "2026-07-01", "100", "36"), ("2026-08-01", "2027-01-01", "150", "36")),
            "Phase 2 of 'Seats' starts on 2026-08-01 but the phase before ends on 2026-07-01: "
            "the days in between would have no price.",
        ),
        (
            (("2026-01-01", "2026-07-01", "100", "36"), ("2026-06-01", "2027-01-01", "150", "36")),
            "Phase 2 of 'Seats' starts on 2026-06-01, before the phase before ends (2026-07-01): "
            "phases must follow each other without overlap.",
        ),
        (
            (("2026-02-01", "2027-01-01", "100", "36"),),
            "Phase 1 of 'Seats' starts on 2026-02-01 but the term starts on 2026-01-01: the days "
            "in between would have no price.",
        ),
        (
            (("2026-01-01", "2026-07-01", "100", "36"), ("2026-07-01", "2026-10-01", "150", "36")),
            "The phases of 'Seats' end on 2026-10-01 but the term ends on 2027-01-01: the phases "
            "must cover the whole term.",
        ),
        (
            (("2026-01-01", "2026-07-15", "100", "36"), ("2026-07-15", "2027-01-01", "150", "36")),
            "Phase 1 of 'Seats' changes on 2026-07-15, inside a billing period: a phase must "
            "start and end where a billing period does (2026-01-01, 2026-04-01, 2026-07-01, "
            "2026-10-01, 2027-01-01).",
        ),
        (
            (("2026-01-01", "2026-07-01", "-1", "36"), ("2026-07-01", "2027-01-01", "150", "36")),
            "The quantity of phase 1 of 'Seats' cannot be negative.",
        ),
        (
            (("2026-01-01", "2026-07-01", "100", "-36"), ("2026-07-01", "2027-01-01", "150", "36")),
            "The unit price of 'Seats, phase 1' cannot be negative.",
        ),
    ],
)
def test_a_ramp_must_cover_the_term_in_order_on_period_boundaries(db, phases, message):
    # Given quarterly billing: a phase may change on Jan 1, Apr 1, Jul 1 or Oct 1 only
    plan, seats, _ = seats_plan(interval=3)

    with pytest.raises(ValidationError) as error:
        create(
            plan,
            [ItemSpec(charge=seats, quantity=Decimal("100"), phases=ramp(*phases))],
        )

    assert error.value.message == message
    assert written() == (0, 0, 0, 0)


def test_a_ramp_on_a_usage_item_is_refused(db):
    plan, _, calls = seats_plan()

    with pytest.raises(ValidationError) as error:
        create(
            plan,
            [
                ItemSpec(
                    charge=calls,
                    quantity=Decimal(0),
                    phases=ramp(("2026-01-01", "2027-01-01", "0", "0.002")),
                )
            ],
        )

    assert error.value.message == (
        "'API calls' is usage: a ramp is for fixed fees (platform fee, seats); give the usage "
        "item its negotiated price instead."
    )
    assert written() == (0, 0, 0, 0)


_ids = count()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    interval=st.sampled_from([1, 3]),
)
def test_advance_amounts_sum_to_each_phase_fee_times_its_periods(db, data, interval):
    # Given a 12-month term cut into phases at random period boundaries, each phase a random
    # quantity at a random net price (up to 12 decimals, so rounding matters)
    plan = PlanFactory(billing_interval_months=interval)
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=Decimal("40"), unit_name="seat")
    periods = 12 // interval
    cuts = sorted(
        data.draw(st.sets(st.integers(1, periods - 1), max_size=periods - 1), label="cuts")
    )
    bounds = [0, *cuts, periods]
    start = day("2026-01-31")  # month ends clamp: Feb 28, Mar 31…
    phases = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        quantity = data.draw(st.decimals("0", "10000", places=2), label="quantity")
        price = data.draw(st.decimals("0", "1000", places=12), label="price")
        phases.append(
            PhaseSpec(
                add_months(start, a * interval),
                add_months(start, b * interval),
                quantity,
                standard(str(price)),
            )
        )

    subscription = create(
        plan,
        [ItemSpec(charge=seats, quantity=Decimal("1"), pricing=standard("40"), phases=phases)],
        start="2026-01-31",
        external_id=f"sub_prop_{next(_ids)}",
        billing_interval_months=interval,
    )

    # Then the schedule bills each phase's rounded fee once per period of the phase
    expected = sum(
        (
            round_money(rating.rate(p.pricing, p.quantity).amount, "USD") * (b - a)
            for p, a, b in zip(phases, bounds, bounds[1:], strict=False)
        ),
        Decimal(0),
    )
    assert sum(advance_amounts(subscription), Decimal(0)) == expected


# --- billing interval ---------------------------------------------------------------------------


def test_a_quote_may_bill_a_monthly_plan_quarterly_at_its_quarterly_price(db):
    # Given seats at $40.00 a month list, $108.00 a quarter net (3 × 40.00 − 10%)
    plan, seats, _ = seats_plan()

    subscription = create(
        plan,
        [
            ItemSpec(
                charge=seats,
                quantity=Decimal("10"),
                pricing=standard("108.00"),
                list_pricing=standard("120.00"),
                discount_percent=Decimal("10"),
            )
        ],
        billing_interval_months=3,
    )

    assert subscription.billing_interval_months == 3
    # four quarters of 10 seats × $108.00 = $1,080.00
    assert list(subscription.billing_periods.values_list("start_date", "advance_amount")) == [
        (day("2026-01-01"), Decimal("1080.00")),
        (day("2026-04-01"), Decimal("1080.00")),
        (day("2026-07-01"), Decimal("1080.00")),
        (day("2026-10-01"), Decimal("1080.00")),
    ]
    # MRR: 1,080.00 a quarter ÷ 3 = 360.00
    assert subscription_mrr(subscription, on=day("2026-02-01")) == Decimal("360")


def test_another_interval_without_the_items_price_for_it_is_refused(db):
    # A monthly catalog price billed once a quarter would bill a third of the contract
    plan, seats, _ = seats_plan()

    with pytest.raises(ValidationError) as error:
        create(plan, [ItemSpec(charge=seats, quantity=Decimal("10"))], billing_interval_months=3)

    assert error.value.message == (
        "'Seats' is billed every 3 months but the plan's prices are per 1 months: give its "
        "price terms for 3 months (pricing)."
    )
    assert written() == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        (
            5,
            "The term (12 months) must be a positive multiple of the billing interval (5 months).",
        ),
        (0, "The billing interval must be a whole number of months above zero, not 0."),
    ],
)
def test_a_term_that_is_not_whole_billing_intervals_is_refused(db, interval, message):
    plan, seats, _ = seats_plan()

    with pytest.raises(ValidationError) as error:
        create(
            plan,
            [ItemSpec(charge=seats, quantity=Decimal("10"), pricing=standard("40"))],
            billing_interval_months=interval,
        )

    assert error.value.message == message
    assert written() == (0, 0, 0, 0)


# --- one-time fees ------------------------------------------------------------------------------


def test_a_one_time_fee_is_in_the_first_period_only(db):
    plan, seats, _ = seats_plan()

    subscription = create(
        plan,
        [
            ItemSpec(charge=seats, quantity=Decimal("10")),
            ItemSpec(
                charge=None,
                quantity=Decimal("1"),
                name="Implementation",
                pricing={"model": "flat", "unit_price": "5000"},
                one_time=True,
            ),
        ],
        term_months=3,
    )

    # 10 × 40.00 = 400.00 each month, + 5,000.00 implementation in the first
    assert advance_amounts(subscription) == [
        Decimal("5400.00"),
        Decimal("400.00"),
        Decimal("400.00"),
    ]
    one_time = subscription.items.get(name="Implementation")
    assert (one_time.billing_timing, one_time.charge, one_time.metric) == ("one_time", None, None)
    assert one_time.list_pricing is None
    # not recurring revenue: MRR is the seats only
    assert subscription_mrr(subscription, on=day("2026-01-15")) == Decimal("400")


def test_after_a_trial_the_one_time_fee_is_billed_when_billing_begins(db):
    plan, seats, _ = seats_plan()
    plan.trial_days = 45  # Jan 1 + 45 days = Feb 15
    plan.save()

    subscription = create(
        plan,
        [
            ItemSpec(charge=seats, quantity=Decimal("10")),
            ItemSpec(
                charge=None,
                quantity=Decimal("2"),
                name="Training",
                pricing=standard("750"),
                one_time=True,
            ),
        ],
        term_months=3,
    )

    # January is wholly in the trial; February is billed from the 15th: 400.00 (not prorated)
    # + 2 × 750.00 = 1,900.00; March 400.00
    assert list(subscription.billing_periods.values_list("billed_from", "advance_amount")) == [
        (day("2026-02-15"), Decimal("1900.00")),
        (day("2026-03-01"), Decimal("400.00")),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"charge": None, "name": "Implementation", "pricing": standard("1")},
            "'Implementation' has no charge: only a one-time fee may be priced without one of the "
            "plan's charges.",
        ),
        (
            {"charge": None, "name": "Implementation", "one_time": True},
            "A one-time fee without a charge needs a name and its price terms (pricing).",
        ),
        (
            {"charge": "calls", "one_time": True},
            "'API calls' is usage of api_calls: only a fixed fee can be billed once.",
        ),
        (
            {
                "charge": None,
                "name": "Onboarding",
                "one_time": True,
                "pricing": standard("100"),
                "phases": ramp(("2026-01-01", "2027-01-01", "1", "100")),
            },
            "'Onboarding' is a one-time fee: it is billed once and has no ramp.",
        ),
    ],
)
def test_a_one_time_fee_is_a_named_fixed_fee(db, spec, message):
    plan, _, calls = seats_plan()
    if spec.get("charge") == "calls":
        spec["charge"] = calls

    with pytest.raises(ValidationError) as error:
        create(plan, [ItemSpec(quantity=Decimal("1"), **spec)])

    assert error.value.message == message
    assert written() == (0, 0, 0, 0)


# --- prepaid credits ----------------------------------------------------------------------------


def test_credits_are_granted_on_the_start_date(db):
    plan, seats, calls = seats_plan()

    with time_machine.travel("2025-12-10 12:00Z", tick=False):  # signed before the start
        subscription = create(
            plan,
            [ItemSpec(charge=seats, quantity=Decimal("10")), ItemSpec(charge=calls, quantity=0)],
            credits=[
                CreditSpec(amount=Decimal("250.00"), note="Signing credit"),
                CreditSpec(amount=Decimal("100000"), metric=calls.metric),
            ],
        )

    assert list(
        subscription.prepaid_credits.values_list(
            "metric__code", "granted", "remaining", "granted_on", "note"
        )
    ) == [
        (None, Decimal("250.00"), Decimal("250.00"), dt.date(2026, 1, 1), "Signing credit"),
        ("api_calls", Decimal("100000"), Decimal("100000"), dt.date(2026, 1, 1), ""),
    ]


@pytest.mark.parametrize(
    ("credit", "message"),
    [
        (CreditSpec(amount=Decimal("0")), "A prepaid credit must be above zero."),
        (CreditSpec(amount=Decimal("10.001")), "10.001 has more decimals than USD allows."),
        (
            "other_metric",
            "Subscription sub_ramp is not billed for tokens: a unit credit must be on a metric "
            "it uses.",
        ),
    ],
)
def test_a_credit_the_contract_cannot_use_is_refused_and_nothing_is_written(db, credit, message):
    plan, seats, _ = seats_plan()
    if credit == "other_metric":
        credit = CreditSpec(amount=Decimal("5"), metric=MetricFactory(code="tokens"))

    with pytest.raises(ValidationError) as error:
        create(plan, [ItemSpec(charge=seats, quantity=Decimal("10"))], credits=[credit])

    assert error.value.message == message
    assert written() == (0, 0, 0, 0)
