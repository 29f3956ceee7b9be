"""Renewals: the renewal quote restates the contract in force with the uplift; accepting it
extends the term with no gap and no overlap; the daily job drafts it once and renews
automatically on the term's last day."""

from decimal import Decimal as D

import pytest
import time_machine

from core.errors import Conflict, ValidationError
from invoicing.models import Invoice
from invoicing.services import billing_run
from quotes.models import Quote, QuoteLine
from quotes.renewals import renewal_quote_create, renewals_run
from quotes.services import quote_accept
from subscriptions.changes import subscription_cancel
from subscriptions.models import BillingPeriod, Subscription, SubscriptionChange
from tests.factories import ChargeFactory, CustomerFactory, PlanFactory, QuoteFactory, day
from tests.quotes.deal import northwind_deal, scale_plan


def at(when: str):
    return time_machine.travel(f"{when} 09:00Z", tick=False)


def northwind(uplift=None, on="net", customer_uplift=None) -> Subscription:
    """Northwind's accepted two-year deal (tests/quotes/deal.py), 2027-01-01 to 2029-01-01."""
    plan = scale_plan()
    plan.renewal_uplift_percent, plan.renewal_uplift_on = uplift, on
    plan.save()
    customer = CustomerFactory(
        external_id="northwind", name="Northwind", renewal_uplift_percent=customer_uplift
    )
    with at("2026-12-01"):
        quote = quote_accept(quote=northwind_deal(plan=plan, customer=customer))
    return quote.subscription


def seats_quote(
    *, discount_percent=None, discount_amount=None, uplift="5", on="net", name="acme", every=None
) -> Subscription:
    """Acme: 20 seats, list 40.00, monthly, 6 months from 2026-02-01, accepted (sub_acme)."""
    plan = PlanFactory(renewal_uplift_percent=D(uplift), renewal_uplift_on=on)
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("40"), unit_name="seat")
    quote = QuoteFactory(
        customer=CustomerFactory(external_id=name),
        plan=plan,
        start_date=day("2026-02-01"),
        term_months=6,
        valid_until=day("2026-01-31"),
        subscription_external_id=f"sub_{name}",
        billing_interval_months=every,
    )
    QuoteLine.objects.create(
        quote=quote,
        charge=seats,
        description="Seats",
        quantity=D(20),
        discount_percent=discount_percent,
        discount_amount=discount_amount,
    )
    with at("2026-01-10"):
        return quote_accept(quote=quote).subscription


def line_terms(quote: Quote) -> list[tuple]:
    return [
        (
            line.description,
            line.quantity,
            line.unit_price,
            line.discount_percent,
            line.discount_amount,
        )  # fmt: skip
        for line in quote.lines.order_by("position", "id")
    ]


def test_the_renewal_quote_keeps_the_discount_tiers_and_ramp_with_the_uplift_on_net(db):
    # Given Northwind's deal, the plan uplifting renewals 5 % on net prices
    subscription = northwind(uplift=D(5))

    # When the renewal is quoted 45 days before the term ends
    with at("2028-11-17"):
        quote = renewal_quote_create(subscription=subscription)

    # Then a renewal of the same two-year term, starting the day the term ends
    assert (quote.kind, quote.contract, quote.status) == ("renewal", subscription, "draft")
    assert (quote.start_date, quote.term_months, quote.valid_until) == (
        day("2029-01-01"),
        24,
        day("2028-12-31"),
    )
    assert quote.title == "Renewal of sub_northwind"
    assert quote.notes == "Renewal with a 5% uplift on net prices."
    assert quote.auto_renew is False  # the subscription is set to end
    # Platform fee 1,000.00 × 1.05 = 1,050.00; seats 40.00 (36.00 net after 10 % off) × 1.05 =
    # 42.00, the 10 % kept; the implementation fee is not renewed.
    assert line_terms(quote) == [
        ("Platform fee", D(1), D("1050.00"), None, None),
        ("Seats", D(100), D("42.00"), D(10), None),
        ("API calls", D(0), None, None, None),
    ]
    seats, calls = quote.lines.get(description="Seats"), quote.lines.get(description="API calls")
    # The ramp at the same month offsets: months 1–12, 100 seats at 40.00 → 42.00 (37.80 net);
    # months 13–24, 150 seats at 38.00 → 39.90 (35.91 net).
    assert [(p.start_month, p.end_month, p.quantity, p.unit_price) for p in seats.phases.all()] == [
        (1, 12, D(100), D("42.00")),
        (13, 24, D(150), D("39.90")),
    ]
    # The negotiated tiers, 0.0018 and 0.0009 a call, × 1.05 = 0.00189 and 0.000945 (finer than
    # a cent: 12 decimals kept); the minimum commitment of 3,000.00 a month stays.
    assert [(t.up_to, t.unit_price, t.flat_fee) for t in calls.tiers.all()] == [
        (D(2_000_000), D("0.00189"), D("0.00")),
        (None, D("0.000945"), D("0.00")),
    ]
    assert calls.minimum_amount == D("3000.00")


def test_a_list_uplift_raises_the_list_price_and_keeps_the_percentage_off_it(db):
    # Given 20 seats at 36.00: 10 % off the 40.00 list; the plan uplifts 5 % on list
    subscription = seats_quote(discount_percent=D(10), on="list")

    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)

    # Then 40.00 × 1.05 = 42.00 list, 10 % off: 37.80 net a seat, 20 × 37.80 = 756.00 a month
    assert quote.notes == "Renewal with a 5% uplift on list prices."
    assert line_terms(quote) == [("Seats", D(20), D("42.00"), D(10), None)]
    with at("2026-06-15"):
        quote_accept(quote=quote)
    new = subscription.items.get(starts_on=day("2026-08-01"))
    assert new.pricing == {"model": "standard", "unit_price": "37.8"}
    assert BillingPeriod.objects.get(subscription=subscription, sequence=6).advance_amount == D(
        "756.00"
    )


@pytest.mark.parametrize(
    ("on", "discount", "net"),
    [
        # net: 36.00 × 1.10 = 39.60 — the price 40.00 → 44.00 and the discount 4.00 → 4.40
        ("net", D("4.40"), "39.6"),
        # list: 40.00 → 44.00 and the same 4.00 off: 40.00 net
        ("list", D("4.00"), "40"),
    ],
)
def test_an_amount_discount_rises_with_a_net_uplift_and_stays_with_a_list_uplift(
    db, on, discount, net
):
    subscription = seats_quote(discount_amount=D("4.00"), uplift="10", on=on)

    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)
        quote_accept(quote=quote)

    assert line_terms(quote) == [("Seats", D(20), D("44.00"), None, discount)]
    new = subscription.items.get(starts_on=day("2026-08-01"))
    assert new.pricing == {"model": "standard", "unit_price": net}


def test_the_customers_uplift_overrides_the_plans(db):
    # Given the plan's 5 % and Acme's own 3 %
    subscription = seats_quote(discount_percent=D(10))
    subscription.customer.renewal_uplift_percent = D(3)
    subscription.customer.save()

    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)

    # 40.00 × 1.03 = 41.20 list, 10 % off: 37.08 net
    assert quote.notes == "Renewal with a 3% uplift on net prices."
    assert line_terms(quote) == [("Seats", D(20), D("41.20"), D(10), None)]


def test_a_price_in_cents_is_rounded_half_up_to_the_cent_after_the_uplift(db):
    # 33.33 × 1.05 = 34.9965 → 35.00 (a price in cents stays in cents)
    subscription = seats_quote()
    item = subscription.items.get()
    item.pricing = {"model": "standard", "unit_price": "33.33"}
    item.save()

    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)

    assert line_terms(quote) == [("Seats", D(20), D("35.00"), None, None)]


def test_accepting_extends_the_term_with_contiguous_periods_and_bills_the_new_price(db):
    # Given 20 seats at 36.00 (10 % off 40.00), 6 months from Feb 1, 2026, uplift 5 % on net
    subscription = seats_quote(discount_percent=D(10))
    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)

    # When the customer accepts the renewal
    with at("2026-06-20"):
        quote = quote_accept(quote=quote, name="Jane Doe")

    # Then the term runs 12 months, the renewal is recorded with the quote as its source
    subscription.refresh_from_db()
    assert (quote.status, subscription.term_months) == ("accepted", 12)
    assert subscription.term_end_date == day("2027-02-01")
    change = subscription.changes.get()
    assert (change.kind, change.effective_date, change.source) == (
        SubscriptionChange.Kind.RENEWAL,
        day("2026-08-01"),
        quote.number,
    )
    # The periods follow one another, no gap, no overlap, sequences 0–11
    periods = list(BillingPeriod.objects.filter(subscription=subscription).order_by("sequence"))
    assert [p.sequence for p in periods] == list(range(12))
    assert periods[0].start_date == day("2026-02-01")
    assert all(a.end_date == b.start_date for a, b in zip(periods, periods[1:], strict=False))
    assert periods[-1].end_date == day("2027-02-01")
    # 20 × 36.00 = 720.00 a month, then 20 × 37.80 = 756.00 from Aug 1
    assert [p.advance_amount for p in periods] == [D("720.00")] * 6 + [D("756.00")] * 6

    # And a year of billing across the boundary bills the new price from the first new period
    invoices = []
    for month in range(2, 14):
        year, month = 2026 + (month - 1) // 12, (month - 1) % 12 + 1
        with at(f"{year}-{month:02d}-01"):
            result = billing_run()
        assert result.failed == {}
        invoices += result.invoices
    fees = [
        (line.period_start, line.amount)
        for invoice in invoices
        for line in invoice.lines.filter(kind="fee")
    ]
    assert fees == [(day(f"2026-{m:02d}-01"), D("720.00")) for m in range(2, 8)] + [
        (day(f"{2026 + (m > 12)}-{(m - 1) % 12 + 1:02d}-01"), D("756.00")) for m in range(8, 14)
    ]
    # The invoice at the old term's end bills the first new period in advance
    boundary = Invoice.objects.get(subscription=subscription, issue_date=day("2026-08-01"))
    assert [(line.period_start, line.amount) for line in boundary.lines.all()] == [
        (day("2026-08-01"), D("756.00"))
    ]
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


def test_the_daily_job_drafts_the_renewal_once(db, settings):
    settings.RENEWAL_NOTICE_DAYS = 60
    subscription = seats_quote(discount_percent=D(10))  # the term ends Aug 1, 2026

    assert renewals_run(today=day("2026-05-31")).created == []  # 62 days before: not yet
    with at("2026-06-02"):
        first = renewals_run(today=day("2026-06-02"))
        second = renewals_run(today=day("2026-06-03"))

    quote = Quote.objects.get(contract=subscription, kind="renewal")
    assert (first.created, second.created, first.failed) == ([quote.number], [], {})
    assert quote.owner is None and quote.status == "draft"


def test_the_daily_job_renews_automatically_on_the_terms_last_day(db):
    subscription = seats_quote(discount_percent=D(10))
    subscription.renewal = Subscription.Renewal.RENEW
    subscription.save()
    with at("2026-06-02"):
        renewals_run()

    with at("2026-07-31"):
        result = renewals_run()

    quote = Quote.objects.get(contract=subscription, kind="renewal")
    subscription.refresh_from_db()
    assert (result.renewed, result.failed) == (["sub_acme"], {})
    assert (quote.status, subscription.term_months, subscription.renewal) == (
        "accepted",
        12,
        "renew",
    )
    assert quote.status_changes.last().reason == "Renewed automatically at the term's end"
    assert subscription.changes.get().kind == SubscriptionChange.Kind.RENEWAL
    # Run again on the same day: nothing more
    with at("2026-07-31"):
        assert renewals_run().renewed == []


def test_the_daily_job_creates_and_accepts_a_missing_renewal_on_the_last_day(db):
    subscription = seats_quote(discount_percent=D(10))
    subscription.renewal = Subscription.Renewal.RENEW
    subscription.save()

    with at("2026-07-31"):
        result = renewals_run()

    quote = Quote.objects.get(contract=subscription, kind="renewal")
    assert (result.created, result.renewed) == ([quote.number], ["sub_acme"])
    assert quote.status == "accepted"


def test_a_subscription_set_to_end_is_left_to_end(db):
    subscription = seats_quote(discount_percent=D(10))  # renewal "end" by default
    with at("2026-07-31"):
        result = renewals_run()
    assert result.renewed == []
    assert Quote.objects.get(contract=subscription, kind="renewal").status == "draft"

    # Billed through its last date (late usage is still taken a few weeks after the term)
    for month in range(2, 11):
        with at(f"2026-{month:02d}-01"):
            assert billing_run().failed == {}

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ENDED


def test_one_failing_subscription_does_not_stop_the_others(db):
    subscription = seats_quote(discount_percent=D(10))
    subscription.renewal = Subscription.Renewal.RENEW
    subscription.save()
    item = subscription.items.get()
    item.pricing = {"model": "standard", "unit_price": "not a number"}
    item.save()
    other = seats_quote(discount_percent=D(10), name="bluefin")
    other.renewal = Subscription.Renewal.RENEW
    other.save()

    with at("2026-07-31"):
        result = renewals_run()

    assert list(result.failed) == ["sub_acme"]
    assert result.renewed == ["sub_bluefin"]


def test_a_cancelled_subscription_gets_no_renewal_quote(db):
    subscription = seats_quote(discount_percent=D(10))
    with at("2026-03-10"):
        subscription_cancel(subscription=subscription, reason="Budget cut")

        with pytest.raises(Conflict, match="sub_acme is cancelled: only a live subscription"):
            renewal_quote_create(subscription=subscription)
    assert renewals_run(today=day("2026-06-15")).created == []


def test_the_renewal_is_a_daily_periodic_task(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="run-renewals-daily")
    assert (task.task, task.interval.every, task.enabled) == (
        "quotes.tasks.run_renewals",
        86400,
        True,
    )


def test_a_renewal_of_a_term_that_ended_is_refused(db):
    subscription = seats_quote()
    with at("2026-08-01"), pytest.raises(Conflict, match="ended on 2026-08-01"):
        renewal_quote_create(subscription=subscription)


# --- the admin and the PDF ---------------------------------------------------------------------


def staff(client, username: str, group: str):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def test_renew_now_drafts_the_renewal_quote_then_opens_it(db, client):
    from django.urls import reverse

    subscription = seats_quote(discount_percent=D(10))
    rep = staff(client, "rep", "Sales")
    page = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])
    renew = reverse("admin:quotes_quote_renew", args=[subscription.pk])

    with at("2026-06-15"):
        html = rep.get(page).content.decode()
        assert "Renew now (open the renewal quote)" in html
        # The button opens the quotes admin's page, which says what it will draft
        button = rep.get(renew)
        assert "Draft the renewal quote" in button.content.decode()
        assert "Renewal with a 5% uplift on net prices." in button.content.decode()
        drafted = rep.post(renew)
        again = rep.get(renew)

    quote = Quote.objects.get(contract=subscription, kind="renewal")
    change = reverse("admin:quotes_quote_change", args=[quote.pk])
    assert (drafted.status_code, drafted["Location"]) == (302, change)
    assert (again.status_code, again["Location"]) == (302, change)  # opened, not drafted twice
    assert quote.owner.username == "rep"  # the original quote had no owner: who drafted it
    assert line_terms(quote) == [("Seats", D(20), D("42.00"), D(10), None)]


def test_finance_sets_the_renewal_and_unused_credit_rule_on_the_subscription(db, client):
    from django.urls import reverse

    subscription = seats_quote(discount_percent=D(10))
    finance = staff(client, "fiona", "Finance")
    page = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])

    shown = finance.get(page)
    data = {"renewal": "renew", "unused_credit_on_cancel": "refund"}
    for inline in shown.context["inline_admin_formsets"]:  # the read-only tabs' management
        management = inline.formset.management_form
        data |= {management.add_prefix(k): v for k, v in management.initial.items()}
    response = finance.post(page, data)

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.renewal, subscription.unused_credit_on_cancel) == ("renew", "refund")
    assert subscription.revision == 0 and subscription.status == "active"


def test_the_plan_page_shows_the_renewal_uplift(db, admin_client):
    from django.urls import reverse

    plan = PlanFactory(renewal_uplift_percent=D(5))
    html = admin_client.get(reverse("admin:catalog_plan_change", args=[plan.pk])).content.decode()
    assert 'name="renewal_uplift_percent"' in html and 'name="renewal_uplift_on"' in html


def test_the_pdf_titles_a_renewal_with_the_subscription_and_the_new_term(db):
    from quotes.documents import quote_html

    subscription = seats_quote(discount_percent=D(10))
    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)
        html = quote_html(quote)

    assert "Renewal of subscription sub_acme, Aug 1, 2026 – Jan 31, 2027" in html


def test_approval_rules_do_not_block_an_automatic_renewal(db):
    from quotes.models import ApprovalRule

    subscription = seats_quote(discount_percent=D(10))  # accepted before the rule
    ApprovalRule.objects.create(
        name="Line discount above 5%", kind="line_discount_above", threshold=D(5)
    )
    subscription.renewal = Subscription.Renewal.RENEW
    subscription.save()

    with at("2026-07-31"):
        result = renewals_run()

    quote = Quote.objects.get(contract=subscription, kind="renewal")
    assert (result.renewed, quote.status) == (["sub_acme"], "accepted")
    assert [c.reason for c in quote.status_changes.all()][-2:] == [
        "Renewed automatically at the term's end (no approval needed).",
        "Renewed automatically at the term's end",
    ]


def test_a_renewal_drafted_before_an_amendment_is_refused_by_hand_and_replaced_automatically(db):
    from subscriptions.changes import ItemChange, item_spec_of, subscription_change

    subscription = seats_quote(discount_percent=D(10))
    with at("2026-06-02"):
        drafted = renewal_quote_create(subscription=subscription)
        seats = subscription.items.get()
        subscription_change(
            subscription=subscription,
            effective_date=day("2026-07-01"),
            changes=[ItemChange(seats, item_spec_of(seats, quantity=D(25)))],
            description="Seats: 20 → 25",
        )
        with pytest.raises(Conflict, match="changed since this was drafted"):
            quote_accept(quote=drafted)

    subscription.refresh_from_db()
    subscription.renewal = Subscription.Renewal.RENEW
    subscription.save()
    with at("2026-07-31"):
        result = renewals_run()

    drafted.refresh_from_db()
    fresh = Quote.objects.get(contract=subscription, kind="renewal", status="accepted")
    assert (drafted.status, result.renewed) == ("declined", ["sub_acme"])
    assert line_terms(fresh) == [("Seats", D(25), D("42.00"), D(10), None)]  # 25 seats renewed


def test_the_renew_now_button_is_for_those_who_make_quotes(db, client):
    from django.urls import reverse

    subscription = seats_quote()
    finance = staff(client, "fiona", "Finance")
    page = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])

    assert "Renew now" not in finance.get(page).content.decode()
    assert (
        finance.get(reverse("admin:quotes_quote_renew", args=[subscription.pk])).status_code == 403
    )


def test_a_contract_billed_quarterly_renews_at_the_monthly_price_raised(db):
    # Given 20 seats at 36.00 a month (10 % off 40.00), billed quarterly: 108.00 a seat a period
    subscription = seats_quote(discount_percent=D(10), every=3)
    assert subscription.items.get().pricing["unit_price"] in ("108", "108.000000000000")

    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)
        quote_accept(quote=quote)

    # The line states the monthly list price, 40.00 × 1.05 = 42.00; billed quarterly the net is
    # 3 × 37.80 = 113.40 a seat, 20 × 113.40 = 2,268.00 a quarter
    assert (quote.billing_interval_months, quote.term_months) == (3, 6)
    assert line_terms(quote) == [("Seats", D(20), D("42.00"), D(10), None)]
    new = subscription.items.get(starts_on=day("2026-08-01"))
    assert new.pricing == {"model": "standard", "unit_price": "113.4"}
    assert [p.advance_amount for p in subscription.billing_periods.order_by("sequence")] == [
        D("2160.00"),
        D("2160.00"),
        D("2268.00"),
        D("2268.00"),
    ]


def test_a_renewal_quote_moved_off_the_terms_end_is_refused(db):
    subscription = seats_quote()
    with at("2026-06-15"):
        quote = renewal_quote_create(subscription=subscription)
        quote.start_date = day("2026-09-01")
        quote.save()
        with pytest.raises(ValidationError, match="starts the day the term ends, 2026-08-01"):
            quote_accept(quote=quote)


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_draft_one_quote_and_renew_once():
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    subscription = seats_quote(discount_percent=D(10))
    subscription.renewal = Subscription.Renewal.RENEW
    subscription.save()
    barrier = threading.Barrier(2)
    results = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(renewals_run())
        finally:
            connection.close()

    with at("2026-07-31"):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert [r.failed for r in results] == [{}, {}]
    assert sorted(len(r.created) for r in results) == [0, 1]
    assert sorted(r.renewed for r in results) == [[], ["sub_acme"]]
    subscription.refresh_from_db()
    assert subscription.term_months == 12
    assert subscription.changes.count() == 1
    assert Quote.objects.filter(contract=subscription, kind="renewal").count() == 1
