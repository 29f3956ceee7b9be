"""Revenue contracts, performance obligations and recognition, worked by hand to the cent
(the figures of docs/revrec.md, "Contracts, obligations and recognition")."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse

from catalog.models import Charge
from core.money import exact_sum
from invoicing.models import Invoice, InvoiceLine
from revrec.models import JournalEntry, PerformanceObligation, RecognitionLine, RevenueContract
from revrec.recognition import contracts_sync, recognize
from revrec.tasks import revrec_sync as revrec_sync_task
from subscriptions.changes import subscription_cancel, subscription_set_quantity
from subscriptions.services import ItemSpec, subscription_create
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    QuoteFactory,
    UserFactory,
    day,
)
from tests.revrec.ledger import schedule

D = Decimal
Kind = PerformanceObligation.Kind


def assert_lines_sum_to_allocation(contract) -> None:
    for obligation in contract.obligations.all():
        lines = exact_sum(obligation.lines.values_list("amount", flat=True))
        assert lines == obligation.allocated_amount, obligation


def entry_lines(entry) -> list[tuple[str, Decimal, Decimal]]:
    return [(line.account.role, line.debit, line.credit) for line in entry.lines.all()]


def annual_platform_fee():
    """1,200.00 a year for the platform, billed once a year in advance, from Jan 1, 2026."""
    plan = PlanFactory(billing_interval_months=12)
    ChargeFactory(plan=plan, name="Platform fee", unit_price=D("1200"))
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_annual",
        start_date=day("2026-01-01"),
        term_months=12,
    )


def test_a_year_billed_up_front_is_recognized_by_days_across_31_28_and_30_day_months(db):
    # Given a year of platform fee, 1,200.00 billed up front on Jan 1, 2026 (365 days)
    subscription = annual_platform_fee()

    # When the contract is made
    contracts_sync()

    # Then one ratable obligation holds the whole 1,200.00, spread by days: 1200 × 31/365 =
    # 101.917… (31-day months), × 28/365 = 92.054… (Feb), × 30/365 = 98.630… (30-day months).
    # Rounded down they sum to 1,199.94; the 6 cents left go to the largest remainders (.7808 of
    # the 31-day months, earliest first): Jan, Mar, May, Jul, Aug, Oct get 101.92, Dec 101.91.
    contract = RevenueContract.objects.get(subscription=subscription)
    (obligation,) = contract.obligations.all()
    assert (obligation.kind, obligation.allocated_amount) == (Kind.RATABLE, D("1200.00"))
    assert (obligation.service_start, obligation.service_end) == (
        day("2026-01-01"),
        day("2027-01-01"),
    )
    assert schedule(obligation) == {
        "2026-01": D("101.92"),
        "2026-02": D("92.05"),
        "2026-03": D("101.92"),
        "2026-04": D("98.63"),
        "2026-05": D("101.92"),
        "2026-06": D("98.63"),
        "2026-07": D("101.92"),
        "2026-08": D("101.92"),
        "2026-09": D("98.63"),
        "2026-10": D("101.92"),
        "2026-11": D("98.63"),
        "2026-12": D("101.91"),
    }
    assert_lines_sum_to_allocation(contract)

    # When January is recognized
    assert recognize(day("2026-01-01")) == 1

    # Then its line is posted on Jan 31: Dr Deferred revenue 101.92 / Cr Revenue 101.92
    january = obligation.lines.get(month=day("2026-01-01"))
    entry = january.entry
    assert (entry.kind, entry.source, entry.entry_date) == (
        "recognition",
        f"recline:{january.pk}",
        day("2026-01-31"),
    )
    assert entry_lines(entry) == [
        ("deferred_revenue", D("101.92"), D("0")),
        ("revenue", D("0"), D("101.92")),
    ]
    assert obligation.lines.filter(entry=None).count() == 11


def test_recognition_catches_up_earlier_months_and_runs_once(db):
    # Given the annual contract, nothing recognized yet
    annual_platform_fee()
    contracts_sync()

    # When March is recognized, then again, and the contracts synced again
    assert recognize(day("2026-03-01")) == 3
    assert recognize(day("2026-03-01")) == 0
    assert recognize(day("2026-02-01")) == 0
    contracts_sync()

    # Then Jan, Feb and Mar are posted once each, each in its own month, and nothing else moved
    entries = JournalEntry.objects.filter(kind="recognition").order_by("entry_date")
    assert [(e.entry_date, e.lines.first().debit) for e in entries] == [
        (day("2026-01-31"), D("101.92")),
        (day("2026-02-28"), D("92.05")),
        (day("2026-03-31"), D("101.92")),
    ]
    assert RevenueContract.objects.count() == 1
    assert RecognitionLine.objects.count() == 12


def bundle_plan():
    """Platform fee listed 1,000.00 a month, seats 50.00 each, API calls 0.002 in arrears."""
    plan = PlanFactory()
    platform = ChargeFactory(plan=plan, name="Platform fee", unit_price=D("1000"))
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("50"), unit_name="seat")
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("0.002"),
        unit_name="call",
    )
    return plan, platform, seats, calls


def test_a_bundle_is_allocated_by_relative_ssp_with_its_discount(db):
    # Given a quote accepted for 3 months from Jan 1, 2026: the platform fee discounted to
    # 800.00 a month (list 1,000.00), 10 seats at their list 50.00, usage in arrears
    plan, platform, seats, calls = bundle_plan()
    customer = CustomerFactory()
    subscription = subscription_create(
        customer=customer,
        plan=plan,
        external_id="sub_bundle",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[
            ItemSpec(charge=platform, quantity=D("1"), unit_price=D("800")),
            ItemSpec(charge=seats, quantity=D("10")),
            ItemSpec(charge=calls, quantity=D("0")),
        ],
    )
    quote = QuoteFactory(customer=customer, plan=plan, subscription=subscription)

    # When the contract is made
    contracts_sync()

    # Then the transaction price is the fixed fees net of the discount, 3 × 800 + 3 × 500 =
    # 3,900.00, allocated by the list prices as SSP (3,000.00 and 1,500.00): the platform fee
    # 3900 × 3000/4500 = 2,600.00, the seats 1,300.00 — the discount spread over both.
    contract = RevenueContract.objects.get(subscription=subscription)
    assert (contract.quote, contract.currency, contract.start, contract.end) == (
        quote,
        "USD",
        day("2026-01-01"),
        day("2026-04-01"),
    )
    fee, seat, usage = contract.obligations.order_by("position")
    assert [(o.kind, o.fixed_consideration, o.ssp, o.allocated_amount) for o in (fee, seat)] == [
        (Kind.RATABLE, D("2400.00"), D("3000.00"), D("2600.00")),
        (Kind.RATABLE, D("1500.00"), D("1500.00"), D("1300.00")),
    ]
    # Spread over 90 days: 2600 × 31/90 = 895.555…, × 28/90 = 808.888…; 1300 × 31/90 = 447.777…,
    # × 28/90 = 404.444…; the cents left go to the largest remainders.
    assert schedule(fee) == {
        "2026-01": D("895.56"),
        "2026-02": D("808.89"),
        "2026-03": D("895.55"),
    }
    assert schedule(seat) == {
        "2026-01": D("447.78"),
        "2026-02": D("404.44"),
        "2026-03": D("447.78"),
    }
    # Usage is variable consideration: nothing allocated, nothing scheduled ahead
    assert (usage.kind, usage.allocated_amount, schedule(usage)) == (Kind.USAGE, D("0"), {})
    assert_lines_sum_to_allocation(contract)


def usage_invoice(subscription, *, number, start, end, amount, status=Invoice.Status.FINALIZED):
    """A finalized invoice with one usage line for the service period [start, end)."""
    invoice = Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        billing_date=day(end),
        currency=subscription.currency,
        status=status,
        number=number if status != Invoice.Status.DRAFT else None,
        issue_date=day(end),
        subtotal=D(amount),
        total=D(amount),
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        kind=InvoiceLine.Kind.USAGE,
        item=subscription.items.get(metric__isnull=False),
        description="API calls",
        period_start=day(start),
        period_end=day(end),
        quantity=D(amount) / D("0.002"),
        unit_price=D("0.002"),
        amount=D(amount),
    )
    return invoice


def usage_subscription():
    plan, platform, seats, calls = bundle_plan()
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_usage",
        start_date=day("2026-01-15"),
        term_months=3,
        items=[ItemSpec(charge=calls, quantity=D("0"))],
    )


def test_usage_is_recognized_in_the_months_it_occurred_split_by_days(db):
    # Given usage of Jan 15 – Feb 14 invoiced 62.00 on Feb 15 (finalized), and a draft for the
    # next period (not recognized: not invoiced yet)
    subscription = usage_subscription()
    contracts_sync()
    usage_invoice(subscription, number="INV-1", start="2026-01-15", end="2026-02-15", amount="62")
    usage_invoice(
        subscription,
        number="",
        start="2026-02-15",
        end="2026-03-15",
        amount="99",
        status=Invoice.Status.DRAFT,
    )

    # When January then February are recognized
    recognize(day("2026-01-01"))
    recognize(day("2026-02-01"))

    # Then the 62.00 is split by the 17 days of January and the 14 of February: 34.00, 28.00
    (usage,) = RevenueContract.objects.get().obligations.all()
    assert schedule(usage) == {"2026-01": D("34.00"), "2026-02": D("28.00")}
    assert usage.lines.filter(entry=None).count() == 0
    assert entry_lines(usage.lines.get(month=day("2026-01-01")).entry) == [
        ("deferred_revenue", D("34.00"), D("0")),
        ("revenue", D("0"), D("34.00")),
    ]
    usage.refresh_from_db()
    assert usage.allocated_amount == D("62.00")


def test_usage_invoiced_after_its_month_was_recognized_is_caught_up_in_the_next(db):
    # Given January recognized before the usage invoice of Jan 15 – Feb 14 was finalized
    subscription = usage_subscription()
    contracts_sync()
    recognize(day("2026-01-01"))
    usage_invoice(subscription, number="INV-1", start="2026-01-15", end="2026-02-15", amount="62")

    # When February is recognized (and January again)
    recognize(day("2026-02-01"))
    recognize(day("2026-01-01"))

    # Then all 62.00 is recognized in February, once
    (usage,) = RevenueContract.objects.get().obligations.all()
    assert schedule(usage) == {"2026-02": D("62.00")}
    assert JournalEntry.objects.filter(kind="recognition").count() == 1


def seats_only(quantity="10"):
    """10 seats at 30.00 a month (list price), billed monthly in advance, Jan 1 – Mar 31, 2026."""
    plan = PlanFactory()
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("30"), unit_name="seat")
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_seats",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[ItemSpec(charge=seats, quantity=D(quantity))],
    )


def test_an_upgrade_mid_term_is_prospective(db):
    # Given 10 seats × 30.00 for Jan–Mar (900.00 over 90 days: 310.00, 280.00, 310.00), with
    # January recognized
    subscription = seats_only()
    contracts_sync()
    recognize(day("2026-01-01"))
    (obligation,) = RevenueContract.objects.get().obligations.all()
    assert schedule(obligation) == {
        "2026-01": D("310.00"),
        "2026-02": D("280.00"),
        "2026-03": D("310.00"),
    }

    # When the seats go to 20 from Feb 15 (decided Feb 10) and the contracts are synced
    change = subscription_set_quantity(
        subscription=subscription,
        item=subscription.items.get(),
        quantity=D("20"),
        effective_date=day("2026-02-15"),
        today=day("2026-02-10"),
    )
    contracts_sync()

    # Then the change's new consideration is what 20 seats bill from Feb 15 (600 × 14/28 = 300.00
    # + 600.00 for March) less what 10 would have (150.00 + 300.00): 450.00, so the allocation is
    # 1,350.00 (= what the invoices bill: 300 + 300 + 150 proration + 600). January (posted) and
    # Feb 1–14 (280 × 14/28 = 140.00) keep what they had: 450.00; the 900.00 left is spread over
    # the 45 days from Feb 15: Feb 900 × 14/45 = 280.00, Mar 620.00.
    obligation.refresh_from_db()
    assert obligation.allocated_amount == D("1350.00")
    assert obligation.last_change == change
    assert obligation.item == subscription.items.get(change=change)
    assert schedule(obligation) == {
        "2026-01": D("310.00"),
        "2026-02": D("420.00"),
        "2026-03": D("620.00"),
    }
    assert_lines_sum_to_allocation(obligation.contract)

    # And syncing again applies the change once
    contracts_sync()
    obligation.refresh_from_db()
    assert obligation.allocated_amount == D("1350.00")


def test_a_cancellation_recognizes_the_rest_of_the_allocation_in_its_month(db):
    # Given the bundle's platform fee (allocated 2,600.00 for 2,400.00 billed) and January posted
    plan, platform, seats, calls = bundle_plan()
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_cancel",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[
            ItemSpec(charge=platform, quantity=D("1"), unit_price=D("800")),
            ItemSpec(charge=seats, quantity=D("10")),
        ],
    )
    contracts_sync()
    recognize(day("2026-01-01"))

    # When it is cancelled from Mar 1 (decided Feb 10)
    subscription_cancel(
        subscription=subscription,
        reason="Budget cut",
        effective_date=day("2026-03-01"),
        today=day("2026-02-10"),
    )
    contracts_sync()

    # Then March's fees no longer come (platform −800.00, seats −500.00): the platform fee's
    # allocation becomes 1,800.00, the seats' 800.00 (together the 2,600.00 billed for Jan and
    # Feb); January stays, February takes the rest and March nothing.
    fee, seat = RevenueContract.objects.get().obligations.order_by("position")
    assert (fee.allocated_amount, seat.allocated_amount) == (D("1800.00"), D("800.00"))
    assert schedule(fee) == {"2026-01": D("895.56"), "2026-02": D("904.44")}
    assert schedule(seat) == {"2026-01": D("447.78"), "2026-02": D("352.22")}
    assert RevenueContract.objects.get().end == day("2026-03-01")
    assert_lines_sum_to_allocation(fee.contract)


def test_every_obligation_sums_to_its_allocation_on_odd_figures(db):
    # Given a bundle with a discount that does not divide evenly over 3 months of 31/28/31 days
    plan, platform, seats, calls = bundle_plan()
    subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_odd",
        start_date=day("2026-01-31"),
        term_months=3,
        items=[
            ItemSpec(charge=platform, quantity=D("1"), unit_price=D("777.77")),
            ItemSpec(charge=seats, quantity=D("7")),
        ],
    )

    contracts_sync()

    contract = RevenueContract.objects.get()
    price = exact_sum(o.fixed_consideration for o in contract.obligations.all())
    assert price == 3 * D("777.77") + 3 * 7 * D("50")
    assert exact_sum(o.allocated_amount for o in contract.obligations.all()) == price
    assert_lines_sum_to_allocation(contract)
    assert contract.obligations.first().service_end == dt.date(2026, 4, 30)


@pytest.mark.parametrize("convention", ["monthly"])
def test_the_monthly_convention_is_a_setting(db, settings, convention):
    # Given the monthly convention: a whole month counts one share
    settings.REVREC_CONVENTION = convention
    annual_platform_fee()

    contracts_sync()

    # Then each month recognizes 1,200.00 / 12 = 100.00
    (obligation,) = PerformanceObligation.objects.all()
    assert set(schedule(obligation).values()) == {D("100.00")}


def test_the_hourly_task_recognizes_the_month_that_is_over(db):
    # Given the annual contract's subscription, on Feb 2, 2026
    annual_platform_fee()

    # When the revrec task runs (old schedules, then contracts and recognition)
    with time_machine.travel("2026-02-02 01:00Z", tick=False):
        revrec_sync_task()

    # Then the contract exists and January (only) is posted
    (obligation,) = PerformanceObligation.objects.all()
    posted = obligation.lines.exclude(entry=None)
    assert [(f"{line.month:%Y-%m}", line.amount) for line in posted] == [("2026-01", D("101.92"))]


def finance_user():
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def test_finance_sees_a_contract_with_its_obligations_and_lines(client, db):
    # Given the bundle's contract
    annual_platform_fee()
    contracts_sync()
    recognize(day("2026-01-01"))
    client.force_login(finance_user())

    # When finance opens the contract
    contract = RevenueContract.objects.get()
    page = client.get(reverse("admin:revrec_revenuecontract_change", args=[contract.pk]))

    # Then the obligation and its monthly lines show, January marked posted
    text = page.content.decode()
    assert page.status_code == 200
    assert "Series over time (ratable)" in text
    assert "Jan 2026: $101.92 ✓" in text
    assert "Dec 2026: $101.91<" in text


def test_recognize_now_posts_the_month_chosen_once(client, db):
    # Given the annual subscription, no contract yet
    annual_platform_fee()
    client.force_login(finance_user())
    url = reverse("admin:revrec_revenuecontract_recognize")
    assert client.get(url).status_code == 200

    # When finance recognizes February twice
    first = client.post(url, {"month": "2026-02-10"})
    client.post(url, {"month": "2026-02-10"})

    # Then the contract was made and Jan and Feb posted once
    assert first.status_code == 302
    assert JournalEntry.objects.filter(kind="recognition").count() == 2
    notes = [str(m) for m in get_messages(first.wsgi_request)]
    assert notes == [
        "Recognition through February 2026: 2 lines posted to the journal (1 new contract)."
    ]


def test_sales_may_not_recognize(client, db):
    user = UserFactory(username="rep", is_staff=True)
    user.groups.add(Group.objects.get(name="Sales"))
    client.force_login(user)

    answer = client.post(reverse("admin:revrec_revenuecontract_recognize"), {"month": "2026-02-01"})

    assert answer.status_code == 403
    assert JournalEntry.objects.count() == 0


def test_a_contract_made_after_the_change_comes_to_the_same_lines(db):
    # Given the seats raised to 20 from Feb 15 before any contract was made
    subscription = seats_only()
    subscription_set_quantity(
        subscription=subscription,
        item=subscription.items.get(),
        quantity=D("20"),
        effective_date=day("2026-02-15"),
        today=day("2026-02-10"),
    )

    # When the contract is made: as signed, then the change applied
    contracts_sync()

    # Then the lines are those of the prospective upgrade above
    (obligation,) = RevenueContract.objects.get().obligations.all()
    assert obligation.allocated_amount == D("1350.00")
    assert schedule(obligation) == {
        "2026-01": D("310.00"),
        "2026-02": D("420.00"),
        "2026-03": D("620.00"),
    }
