"""A contract changed mid-period is billed by days, exact to the cent: the unused time of what was
billed in advance is credited at the old price, the remaining time is charged at the new price,
both on the next invoice (or on an invoice of their own, at once); usage is rated per version."""

import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import Charge
from invoicing.builder import proration_lines
from invoicing.models import Invoice
from invoicing.pdf import invoice_html
from invoicing.services import billing_run
from subscriptions.changes import ItemChange, item_spec_of, subscription_change
from subscriptions.changes import subscription_set_quantity as set_quantity
from subscriptions.models import BillingPeriod, SubscriptionItem
from subscriptions.services import ItemSpec, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, PlanFactory, day, hybrid_plan
from tests.invoicing.test_billing import calls, lines_of

D = Decimal


def bill(on: str) -> list[Invoice]:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        result = billing_run()
    assert result.failed == {}
    return result.invoices


def basic_plan(*, platform="500", seat="30", call="0.002", trial_days=0):
    """500.00 platform fee + 12 seats × 30.00 in advance, API calls at 0.002 in arrears."""
    return hybrid_plan(
        platform_fee=platform, seat_price=seat, call_price=call, seats="12", trial_days=trial_days
    )


def subscribe(plan, *, start="2026-01-01", term_months=12, external_id="sub_acme"):
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id=external_id,
        start_date=day(start),
        term_months=term_months,
    )


def item(subscription, name, on):
    return next(i for i in subscription.items.all() if i.name == name and i.in_force(day(on)))


def seats_to(subscription, quantity, on, *, today, invoice_now=False):
    return set_quantity(
        subscription=subscription,
        item=item(subscription, "Seats", on),
        quantity=D(quantity),
        effective_date=day(on),
        today=day(today),
        invoice_now=invoice_now,
        source="test",
    )


def test_a_seat_increase_mid_month_credits_unused_time_and_charges_the_rest_next_invoice(db):
    # Given 12 seats at 30.00 billed in advance, raised to 20 from Mar 16 (accepted Mar 10)
    subscription = subscribe(basic_plan())
    bill("2026-01-01"), bill("2026-02-01")
    (march,) = bill("2026-03-01")
    seats_to(subscription, "20", "2026-03-16", today="2026-03-10")
    calls(subscription, 1000, "2026-03-20")

    (april,) = bill("2026-04-01")

    # Then Mar 1 billed 12 seats for March; Apr 1: March's usage, the unused 16/31 of the 12
    # seats credited (12 × 30 × 16/31 = 185.806… → −185.81), the remaining 16/31 at 20 seats
    # charged (20 × 30 × 16/31 = 309.677… → 309.68), then April in advance at 20 seats
    assert ("fee", "Seats", D("12"), D("360.00")) in lines_of(march)
    assert lines_of(april) == [
        ("usage", "API calls", D("1000"), D("2.00")),
        ("proration", "Unused time on 12 × Seats from Mar 16", D("12"), D("-185.81")),
        ("proration", "Remaining time on 20 × Seats from Mar 16", D("20"), D("309.68")),
        ("fee", "Platform fee", D("1"), D("500.00")),
        ("fee", "Seats", D("20"), D("600.00")),
    ]
    assert april.total == D("1225.87")
    # The document prints each proration line with its quantity, days and amount
    html = invoice_html(april)
    row = re.search(r"<td>Unused time on 12 × Seats from Mar 16.*?</tr>", html, re.S).group(0)
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["12", "$30.00", "-$185.81"]
    unused = april.lines.get(description__startswith="Unused")
    assert (unused.period_start, unused.period_end) == (day("2026-03-16"), day("2026-04-01"))
    assert unused.explanation[0]["description"].startswith(
        "Quantity change from Mar 16, 2026: Seats: 12 → 20 seats"
    )
    assert unused.explanation[-1] == {
        "description": "× 16/31 days (Mar 16 – Mar 31), credited",
        "subtotal": "-185.81",
    }


def test_an_upgrade_mid_period_swaps_the_plan_and_rates_usage_per_version(db):
    # Given the basic plan (500 + 12 × 30.00, calls at 0.002) upgraded on Mar 16 to pro
    # (1,000 + 12 × 35.00, calls at 0.001)
    subscription = subscribe(basic_plan())
    pro = basic_plan(platform="1000", seat="35", call="0.001")
    bill("2026-03-01")
    calls(subscription, 1000, "2026-03-10")
    new_items = [
        ItemChange(None, ItemSpec(charge=c, quantity=c.default_quantity)) for c in pro.charges.all()
    ]
    subscription_change(
        subscription=subscription,
        effective_date=day("2026-03-16"),
        changes=new_items,
        plan=pro,
        today=day("2026-03-12"),
    )
    calls(subscription, 2000, "2026-03-20")

    (april,) = bill("2026-04-01")

    # Then each version's usage for its own days (1,000 × 0.002 and 2,000 × 0.001), the unused
    # 16/31 of basic credited (500 → −258.06, 360 → −185.81), the remaining 16/31 of pro
    # charged (1,000 → 516.13, 420 → 216.77), then April at pro prices
    subscription.refresh_from_db()
    assert subscription.plan == pro
    assert lines_of(april) == [
        ("usage", "API calls", D("1000"), D("2.00")),
        ("usage", "API calls", D("2000"), D("2.00")),
        ("proration", "Unused time on Platform fee from Mar 16", D("1"), D("-258.06")),
        ("proration", "Unused time on 12 × Seats from Mar 16", D("12"), D("-185.81")),
        ("proration", "Remaining time on Platform fee from Mar 16", D("1"), D("516.13")),
        ("proration", "Remaining time on 12 × Seats from Mar 16", D("12"), D("216.77")),
        ("fee", "Platform fee", D("1"), D("1000.00")),
        ("fee", "Seats", D("12"), D("420.00")),
    ]
    old_usage, new_usage = april.lines.filter(kind="usage")
    assert (old_usage.period_start, old_usage.period_end) == (day("2026-03-01"), day("2026-03-16"))
    assert (new_usage.period_start, new_usage.period_end) == (day("2026-03-16"), day("2026-04-01"))


def test_a_downgrade_mid_period_credits_more_than_it_charges(db):
    # Given 20 seats at 30.00 cut to 5 from Mar 16
    subscription = subscribe(basic_plan())
    seats_to(subscription, "20", "2026-01-01", today="2026-01-01")
    *_, march = bill("2026-03-01")
    seats_to(subscription, "5", "2026-03-16", today="2026-03-14")

    (april,) = bill("2026-04-01")

    # Then 600 × 16/31 = 309.68 credited, 150 × 16/31 = 77.419… → 77.42 charged
    assert ("fee", "Seats", D("20"), D("600.00")) in lines_of(march)
    prorations = [line for line in lines_of(april) if line[0] == "proration"]
    assert prorations == [
        ("proration", "Unused time on 20 × Seats from Mar 16", D("20"), D("-309.68")),
        ("proration", "Remaining time on 5 × Seats from Mar 16", D("5"), D("77.42")),
    ]
    assert ("fee", "Seats", D("5"), D("150.00")) in lines_of(april)


def test_a_change_on_the_first_day_of_a_period_prorates_nothing(db):
    subscription = subscribe(basic_plan())
    bill("2026-02-01")
    seats_to(subscription, "20", "2026-03-01", today="2026-02-20")

    (march,) = bill("2026-03-01")
    (april,) = bill("2026-04-01")

    # The new quantity is simply billed in advance from Mar 1; nothing to prorate
    assert ("fee", "Seats", D("20"), D("600.00")) in lines_of(march)
    assert not march.lines.filter(kind="proration").exists()
    assert not april.lines.filter(kind="proration").exists()


def test_a_change_on_the_last_day_of_a_period_prorates_one_day(db):
    subscription = subscribe(basic_plan())
    bill("2026-03-01")
    seats_to(subscription, "20", "2026-03-31", today="2026-03-20")

    (april,) = bill("2026-04-01")

    # 360 × 1/31 = 11.612… → −11.61; 600 × 1/31 = 19.354… → 19.35
    assert [line for line in lines_of(april) if line[0] == "proration"] == [
        ("proration", "Unused time on 12 × Seats from Mar 31", D("12"), D("-11.61")),
        ("proration", "Remaining time on 20 × Seats from Mar 31", D("20"), D("19.35")),
    ]


def test_a_change_during_a_trial_bills_the_new_terms_from_the_trial_end_without_proration(db):
    # Given a 14-day trial (Jan 1–14), seats raised to 20 on Jan 10
    subscription = subscribe(basic_plan(trial_days=14))
    seats_to(subscription, "20", "2026-01-10", today="2026-01-05")

    assert bill("2026-01-10") == []
    (first,) = bill("2026-01-15")
    (second,) = bill("2026-02-01")

    # Then the first invoice (trial end) bills 20 seats, and nothing is ever prorated
    assert ("fee", "Seats", D("20"), D("600.00")) in lines_of(first)
    assert not Invoice.objects.filter(lines__kind="proration").exists()
    assert ("fee", "Seats", D("20"), D("600.00")) in lines_of(second)


def test_a_change_invoiced_at_once_gets_its_own_invoice_and_is_not_billed_again(db):
    subscription = subscribe(basic_plan())
    bill("2026-03-01")
    with time_machine.travel("2026-03-16 09:00Z", tick=False):
        change = seats_to(subscription, "20", "2026-03-16", today="2026-03-16", invoice_now=True)

    (own,) = bill("2026-03-16")
    (april,) = bill("2026-04-01")

    assert own.change == change
    assert own.number and own.billing_date == day("2026-03-16")
    assert [line[3] for line in lines_of(own)] == [D("-185.81"), D("309.68")]
    assert own.total == D("123.87")
    assert not april.lines.filter(kind="proration").exists()
    assert bill("2026-03-17") == []  # once


def test_a_tiered_usage_price_changed_mid_period_rates_each_version_on_its_own_days(db):
    # Given graduated calls (first 1,000 at 0.01, then 0.005) with a 100.00 monthly minimum,
    # renegotiated on Mar 16 to 0.008 / 0.004 with the same minimum
    plan = basic_plan()
    usage = plan.charges.get(name="API calls")
    subscription = subscribe(plan)

    def graduated(first, rest):
        return {
            "model": "graduated",
            "tiers": [
                {"from": "0", "up_to": "1000", "unit_price": first, "flat_fee": "0"},
                {"from": "1000", "up_to": None, "unit_price": rest, "flat_fee": "0"},
            ],
            "min_amount": "100",
        }

    # (the contract's terms as a quote with negotiated tiers would have snapshotted them)
    Charge.objects.filter(pk=usage.pk).update(charge_model="graduated")
    calls_item = item(subscription, "API calls", "2026-01-01")
    calls_item.pricing = graduated("0.01", "0.005")
    calls_item.save()
    bill("2026-03-01")
    calls(subscription, 1500, "2026-03-10")
    subscription_change(
        subscription=subscription,
        effective_date=day("2026-03-16"),
        changes=[
            ItemChange(calls_item, item_spec_of(calls_item, pricing=graduated("0.008", "0.004")))
        ],
        today=day("2026-03-12"),
    )
    calls(subscription, 1500, "2026-03-20")

    (april,) = bill("2026-04-01")

    # Then each version counts its tiers from its own first unit:
    #   Mar 1–15: 1,000 × 0.01 + 500 × 0.005 = 12.50, minimum 100 × 15/31 = 48.387… → true-up
    #   Mar 16–31: 1,000 × 0.008 + 500 × 0.004 = 10.00, minimum 100 × 16/31 = 51.612… → true-up
    assert usage.metric_id == calls_item.metric_id
    assert [line for line in lines_of(april) if line[0] in ("usage", "true_up")] == [
        ("usage", "API calls", D("1500"), D("12.50")),
        ("true_up", "API calls: minimum commitment true-up", D("0"), D("35.89")),
        ("usage", "API calls", D("1500"), D("10.00")),
        ("true_up", "API calls: minimum commitment true-up", D("0"), D("41.61")),
    ]


def test_a_year_of_monthly_billing_amended_twice_invoice_by_invoice(db):
    # Given Jan 1, 2026 for 12 months: 500 platform fee + 12 seats × 30.00 in advance, calls at
    # 0.002 in arrears, 1,000 calls on the 5th of every month
    subscription = subscribe(basic_plan())
    for month in range(1, 13):
        calls(subscription, 1000, f"2026-{month:02d}-05")
    invoices = {}
    for month in range(1, 13):
        on = f"2026-{month:02d}-01"
        if on == "2026-03-01":
            invoices[on] = bill(on)
            # Amendment 1, Mar 10: 20 seats from Mar 16, on the next invoice
            seats_to(subscription, "20", "2026-03-16", today="2026-03-10")
            continue
        if on == "2026-08-01":
            invoices[on] = bill(on)
            # Amendment 2, Aug 10: 15 seats at 28.00 from Aug 10, invoiced at once
            seats = item(subscription, "Seats", "2026-08-10")
            with time_machine.travel("2026-08-10 09:00Z", tick=False):
                subscription_change(
                    subscription=subscription,
                    effective_date=day("2026-08-10"),
                    changes=[
                        ItemChange(
                            seats,
                            item_spec_of(
                                seats,
                                quantity=D("15"),
                                pricing={"model": "standard", "unit_price": "28"},
                            ),
                        )
                    ],
                    invoice_now=True,
                    today=day("2026-08-10"),
                )
            invoices["2026-08-10"] = bill("2026-08-10")
            continue
        invoices[on] = bill(on)
    invoices["2027-01-01"] = bill("2027-01-01")
    lateness = dt.timedelta(days=3)
    assert lateness <= dt.timedelta(days=31)  # the sweep bills nothing more (no late usage)

    totals = {on: [i.total for i in found] for on, found in invoices.items()}
    usage = D("2.00")  # 1,000 calls × 0.002 each month
    assert totals == {
        "2026-01-01": [D("860.00")],  # 500 + 12 × 30
        "2026-02-01": [usage + D("860.00")],
        "2026-03-01": [usage + D("860.00")],
        # March usage − 185.81 (12 × 30 × 16/31) + 309.68 (20 × 30 × 16/31) + 500 + 20 × 30
        "2026-04-01": [usage - D("185.81") + D("309.68") + D("1100.00")],
        "2026-05-01": [usage + D("1100.00")],
        "2026-06-01": [usage + D("1100.00")],
        "2026-07-01": [usage + D("1100.00")],
        "2026-08-01": [usage + D("1100.00")],
        # Aug 10 at once: − 600 × 22/31 = −425.81; + 15 × 28 × 22/31 = 420 × 22/31 = 298.06
        "2026-08-10": [D("-425.81") + D("298.06")],
        "2026-09-01": [usage + D("500.00") + D("420.00")],
        "2026-10-01": [usage + D("920.00")],
        "2026-11-01": [usage + D("920.00")],
        "2026-12-01": [usage + D("920.00")],
        "2027-01-01": [usage],  # December's usage; the term is over
    }
    numbers = list(Invoice.objects.order_by("number").values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]  # gapless


@pytest.mark.parametrize("quantity", ["0", "12.5"])
def test_a_quantity_change_keeps_every_version_and_its_history(db, quantity):
    subscription = subscribe(basic_plan())
    change = seats_to(subscription, quantity, "2026-02-10", today="2026-02-01")

    versions = SubscriptionItem.objects.filter(subscription=subscription, name="Seats")
    old, new = versions.order_by("id")
    assert (old.quantity, old.starts_on, old.ends_on, old.ended_by) == (
        D("12"),
        None,
        day("2026-02-10"),
        change,
    )
    assert (new.quantity, new.starts_on, new.ends_on, new.change) == (
        D(quantity),
        day("2026-02-10"),
        None,
        change,
    )
    subscription.refresh_from_db()
    assert subscription.revision == 1
    # The schedule shows the new quantity from the first period it bills in advance
    march = BillingPeriod.objects.get(subscription=subscription, start_date=day("2026-03-01"))
    assert march.advance_amount == D("500") + D(quantity) * 30


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    day_in_month=st.integers(min_value=2, max_value=31),
    before=st.integers(min_value=0, max_value=500),
    after=st.integers(min_value=0, max_value=500),
    cents=st.integers(min_value=1, max_value=100_000),
)
def test_proration_of_any_seat_change_bills_each_day_at_the_quantity_in_force(
    db, day_in_month, before, after, cents
):
    # Invariant: what a period bills for seats (advance + the two proration lines) is, within a
    # cent per line, before × price × days before + after × price × days after, over 31 days
    from django.db import transaction

    if before == after:
        return
    price = D(cents) / 100
    with transaction.atomic():
        plan = PlanFactory()
        ChargeFactory(plan=plan, name="Seats", unit_price=price, default_quantity=D(before))
        subscription = subscribe(plan, external_id=f"sub_{day_in_month}_{before}_{after}_{cents}")
        change_day = dt.date(2026, 1, day_in_month)
        seats_to(subscription, str(after), change_day.isoformat(), today="2026-01-01")
        period = BillingPeriod.objects.get(subscription=subscription, sequence=0)
        lines = proration_lines(subscription, period)
        advance = before * price
        billed = advance + sum(line.amount for line in lines)
        days_before, days_after = day_in_month - 1, 31 - (day_in_month - 1)
        exact = (before * price * days_before + after * price * days_after) / 31
        assert abs(billed - exact) <= D("0.01")
        assert all(line.amount == line.amount.quantize(D("0.01")) for line in lines)
        transaction.set_rollback(True)


def test_shadow_billing_reports_the_change_invoiced_at_once_before_the_run_makes_it(db):
    from invoicing.shadow import shadow_billing

    subscription = subscribe(basic_plan())
    bill("2026-03-01")
    with time_machine.travel("2026-03-16 09:00Z", tick=False):
        seats_to(subscription, "20", "2026-03-16", today="2026-03-16", invoice_now=True)

    shadow = shadow_billing(as_of=day("2026-03-16"))
    (own,) = bill("2026-03-16")

    assert [b.invoice.total for b in shadow.invoices] == [own.total] == [D("123.87")]
    assert [line.amount for line in shadow.invoices[0].lines] == [D("-185.81"), D("309.68")]
