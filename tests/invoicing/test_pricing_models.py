"""Invoices price through the one rating engine: tiers, true-ups, credits, trials, percentage,
groups, price versions and currencies — each figure worked out by hand."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from catalog.models import BillableMetric, Charge, ChargeTier, Plan
from core.errors import ValidationError
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run
from metering.models import Event
from subscriptions.models import PrepaidCredit
from subscriptions.services import prepaid_credit_grant, subscription_create
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    day,
    hybrid_plan,
)

D = Decimal


def events(subscription, code, stamps_and_props):
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"{code}-{n}",
            code=code,
            timestamp=dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC),
            properties=props,
            received_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
        for n, (stamp, props) in enumerate(stamps_and_props)
    )


def bill_on(text):
    with time_machine.travel(f"{text} 01:00Z", tick=False):
        return billing_run().invoices


def lines_of(invoice):
    return [(line.kind, line.description, line.amount) for line in invoice.lines.all()]


def usage_plan(*, model="standard", metric=None, **charge):
    plan = PlanFactory()
    ChargeFactory(
        plan=plan,
        name="API calls",
        metric=metric or MetricFactory(),
        charge_model=model,
        billing_timing=Charge.Timing.IN_ARREARS,
        default_quantity=D(0),
        **charge,
    )
    return plan


def graduated(charge):
    for start, up_to, price in [(0, 100, "1.00"), (100, 500, "0.80"), (500, None, "0.50")]:
        ChargeTier.objects.create(charge=charge, from_units=start, up_to=up_to, unit_price=D(price))


def test_graduated_usage_and_a_minimum_commitment_true_up_line(db):
    plan = usage_plan(model="graduated", min_amount=D("600"))
    graduated(plan.charges.get())
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="s1",
        start_date=day("2026-01-01"),
        term_months=2,
    )
    events(sub, "api_calls", [("2026-01-10T00:00:00", {})] * 650)

    assert bill_on("2026-01-01") == []  # usage only: nothing is billed in advance
    (invoice,) = bill_on("2026-02-01")
    assert lines_of(invoice) == [
        ("usage", "API calls", D("495.00")),  # 100 × 1.00 + 400 × 0.80 + 150 × 0.50
        ("true_up", "API calls: minimum commitment true-up", D("105.00")),  # 600 − 495
    ]
    assert invoice.total == D("600.00")


def test_prepaid_units_then_money_are_drawn_before_anything_is_billed(db):
    plan = usage_plan(unit_price=D("0.10"))
    with time_machine.travel("2026-01-01 00:00Z", tick=False):
        sub = subscription_create(
            customer=CustomerFactory(),
            plan=plan,
            external_id="s2",
            start_date=day("2026-01-01"),
            term_months=2,
        )
        metric = BillableMetric.objects.get(code="api_calls")
        units = prepaid_credit_grant(subscription=sub, amount=D("200"), metric=metric)
        money = prepaid_credit_grant(subscription=sub, amount=D("50.00"))
    events(
        sub, "api_calls", [("2026-01-10T00:00:00", {})] * 650 + [("2026-02-03T00:00:00", {})] * 100
    )

    bill_on("2026-01-01")
    (january,) = bill_on("2026-02-01")
    assert lines_of(january) == [
        ("usage", "API calls", D("45.00")),  # (650 − 200 prepaid units) × 0.10
        ("credit", "Prepaid credit applied (5 USD left)", D("-45.00")),
    ]
    assert january.total == D("0.00") and january.status == Invoice.Status.PAID
    (february,) = bill_on("2026-03-01")
    assert lines_of(february) == [
        ("usage", "API calls", D("10.00")),
        ("credit", "Prepaid credit applied (0 USD left)", D("-5.00")),
    ]
    assert february.total == D("5.00")
    units.refresh_from_db()
    money.refresh_from_db()
    assert (units.remaining, money.remaining) == (D("0"), D("0"))
    assert sorted(u.amount for u in units.uses.all()) == [D("200")]


def test_a_credit_needs_a_metric_the_subscription_uses_and_whole_cents(db):
    plan = usage_plan()
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="s3",
        start_date=day("2026-01-01"),
        term_months=1,
    )
    other = MetricFactory(code="tokens", aggregation="sum", field_name="tokens")
    with pytest.raises(ValidationError, match="is not billed for tokens"):
        prepaid_credit_grant(subscription=sub, amount=D("5"), metric=other)
    with pytest.raises(ValidationError, match="more decimals than USD allows"):
        prepaid_credit_grant(subscription=sub, amount=D("0.001"))
    assert PrepaidCredit.objects.count() == 0


def test_a_trial_makes_the_first_days_free_and_prorates_prorated_fees(db):
    plan = PlanFactory(trial_days=10)
    ChargeFactory(plan=plan, name="Platform fee", unit_price=D("310"), prorated=True)
    ChargeFactory(plan=plan, name="Seats", unit_price=D("10"), default_quantity=D("10"), position=1)
    ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("1"),
        default_quantity=D(0),
        position=2,
    )
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="s4",
        start_date=day("2026-01-01"),
        term_months=2,
    )
    assert sub.trial_end_date == day("2026-01-11")
    events(sub, "api_calls", [("2026-01-05T00:00:00", {})] * 2 + [("2026-01-20T00:00:00", {})] * 3)

    assert bill_on("2026-01-10") == []  # nothing is due during the trial
    (first,) = bill_on("2026-01-11")
    assert lines_of(first) == [
        ("fee", "Platform fee (prorated 21/31 days)", D("210.00")),  # 310 × 21 / 31
        ("fee", "Seats", D("100.00")),  # not prorated
    ]
    (second,) = bill_on("2026-02-01")
    assert lines_of(second) == [
        ("usage", "API calls", D("3.00")),  # the 2 calls in the trial are free
        ("fee", "Platform fee", D("310.00")),
        ("fee", "Seats", D("100.00")),
    ]


def test_percentage_of_payment_amounts_with_a_minimum_per_transaction(db):
    metric = MetricFactory(code="payments", name="Payments", aggregation="sum", field_name="amount")
    plan = usage_plan(
        model="percentage",
        metric=metric,
        percentage_rate=D("1.5"),
        fixed_fee=D("0.10"),
        min_per_event=D("0.25"),
    )
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="s5",
        start_date=day("2026-01-01"),
        term_months=1,
    )
    events(
        sub,
        "payments",
        [("2026-01-03T00:00:00", {"amount": "5.00"}), ("2026-01-04T00:00:00", {"amount": 1000})],
    )
    (invoice,) = bill_on("2026-02-01")
    assert lines_of(invoice) == [("usage", "API calls", D("15.35"))]  # 0.25 + (15.00 + 0.10)
    assert invoice.lines.get().quantity == D("1005.00")


def test_grouped_prices_and_a_default_for_the_other_values(db):
    tokens = MetricFactory(
        code="tokens", name="Tokens", aggregation="sum", field_name="tokens", group_by="model"
    )
    plan = PlanFactory()
    for name, group, price in [
        ("Large model", "large", "0.00003"),
        ("Other models", "", "0.00001"),
    ]:
        ChargeFactory(
            plan=plan,
            name=name,
            metric=tokens,
            group_value=group,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=D(price),
            default_quantity=D(0),
        )
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="s6",
        start_date=day("2026-01-01"),
        term_months=1,
    )
    events(
        sub,
        "tokens",
        [
            ("2026-01-02T00:00:00", {"tokens": 100000, "model": "large"}),
            ("2026-01-03T00:00:00", {"tokens": 200000, "model": "small"}),
            ("2026-01-04T00:00:00", {"tokens": 50000, "model": "medium"}),
        ],
    )
    (invoice,) = bill_on("2026-02-01")
    assert lines_of(invoice) == [
        ("usage", "Large model", D("3.00")),  # 100,000 × 0.00003
        ("usage", "Other models", D("2.50")),  # (200,000 + 50,000) × 0.00001
    ]


def test_price_versions_and_currencies_apply_to_new_subscriptions_only(db):
    plan = PlanFactory(additional_currencies="EUR")
    usd = ChargeFactory(plan=plan, name="Platform fee", key="platform", unit_price=D("100"))
    ChargeFactory(
        plan=plan, name="Platform fee", key="platform", currency="EUR", unit_price=D("90")
    )
    ChargeFactory(
        plan=plan,
        name="Platform fee",
        key="platform",
        unit_price=D("120"),
        effective_from=day("2026-03-01"),
    )

    def advance(external_id, start, currency="USD"):
        sub = subscription_create(
            customer=CustomerFactory(currency=currency),
            plan=plan,
            external_id=external_id,
            start_date=day(start),
            term_months=1,
        )
        return sub.billing_periods.get().advance_amount

    assert advance("before", "2026-02-15") == D("100.00")
    assert advance("after", "2026-03-15") == D("120.00")
    assert advance("euro", "2026-03-15", "EUR") == D("90.00")
    usd.unit_price = D("999")
    usd.save()
    (invoice,) = [i for i in bill_on("2026-02-15") if i.subscription.external_id == "before"]
    assert invoice.subtotal == D("100.00")  # the snapshot, not the edited catalog
    with pytest.raises(ValidationError, match="is sold in USD, EUR but"):
        subscription_create(
            customer=CustomerFactory(currency="GBP"),
            plan=plan,
            external_id="pounds",
            start_date=day("2026-03-01"),
            term_months=1,
        )
    assert not Plan.objects.filter(subscriptions__external_id="pounds").exists()
    assert InvoiceLine.objects.count() == 1


def test_one_subscription_that_cannot_be_rated_does_not_stop_the_run(db):
    good = subscription_create(
        customer=CustomerFactory(),
        plan=hybrid_plan(),
        external_id="good",
        start_date=day("2026-01-01"),
        term_months=1,
    )
    bad = subscription_create(
        customer=CustomerFactory(),
        plan=usage_plan(),
        external_id="bad",
        start_date=day("2025-12-01"),
        term_months=2,
    )
    bad.items.update(pricing={"model": "no-such-model"})
    with time_machine.travel("2026-01-01 01:00Z", tick=False):
        result = billing_run()
    assert [i.subscription.external_id for i in result.invoices] == [good.external_id]
    assert result.failed == {"bad": "Unknown charge model 'no-such-model'."}
    assert not Invoice.objects.filter(subscription=bad).exists()
