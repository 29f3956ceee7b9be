"""Amendments through a quote: the quote starts as the contract in force, its acceptance changes
the contract from the effective date (co-termed), the next invoice prorates the change."""

import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils.html import strip_tags

from catalog.models import Charge
from core.errors import Conflict, ValidationError
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run
from quotes.amendments import LineStatus, amendment_plan, quote_amendment_create
from quotes.documents import quote_html
from quotes.models import Quote, QuoteLine
from quotes.services import quote_accept, quote_populate_lines
from quotes.totals import quote_totals, read_extras
from reporting.selectors import sales_figures
from subscriptions.changes import subscription_set_quantity
from subscriptions.models import Subscription, SubscriptionChange, SubscriptionItem
from subscriptions.services import ItemSpec, PhaseSpec, subscription_create
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    PortalMembershipFactory,
    UserFactory,
    day,
    hybrid_plan,
)
from tests.quotes.deal import northwind_deal
from tests.quotes.helpers import change_data

D = Decimal
DRAFTED = "2026-03-10 09:00Z"  # in the March period, before the change takes effect


def contract(*, seats=12, seat_price="30.00", discount=None, external_id="sub_acme"):
    """Acme on the hybrid plan from Jan 1, 2026 for 12 months, billed monthly: platform fee
    500.00, `seats` seats negotiated at `seat_price`, API calls at 0.002."""
    plan = hybrid_plan()
    customer = CustomerFactory(external_id=external_id.removeprefix("sub_"))
    platform, seat_charge, calls = plan.charges.order_by("position")
    seat_pricing = {**seat_charge.pricing(), "unit_price": seat_price}
    seat_spec = ItemSpec(
        charge=seat_charge,
        quantity=D(seats),
        pricing=seat_pricing,
        list_pricing=seat_charge.pricing(),
        discount_percent=discount,
    )
    return subscription_create(
        customer=customer,
        plan=plan,
        external_id=external_id,
        start_date=day("2026-01-01"),
        term_months=12,
        items=[
            ItemSpec(charge=platform, quantity=D(1)),
            seat_spec,
            ItemSpec(charge=calls, quantity=D(0)),
        ],
    )


def amend(subscription, on="2026-03-16", **kwargs) -> Quote:
    with time_machine.travel(DRAFTED, tick=False):
        return quote_amendment_create(subscription=subscription, effective_date=day(on), **kwargs)


def line(quote, name) -> QuoteLine:
    return quote.lines.get(description=name)


def accept(quote, **kwargs) -> Quote:
    with time_machine.travel(DRAFTED, tick=False):
        return quote_accept(quote=Quote.objects.get(pk=quote.pk), **kwargs)


def versions(subscription):
    """(name, quantity, starts_on, ends_on) of every version, in order."""
    return [
        (item.name, item.quantity, item.starts_on, item.ends_on)
        for item in subscription.items.order_by("position", "id")
    ]


def bill(until: str) -> None:
    for text in ("2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"):
        if text <= until:
            billing_run(today=day(text))


# -- the quote starts as the contract in force ------------------------------------------------


def test_the_amendment_quote_restates_the_contract_in_force(db):
    subscription = contract(seat_price="27.00")
    rep = UserFactory(username="rep")
    quote = amend(subscription, by=rep)

    assert quote.kind == Quote.Kind.AMENDMENT
    assert quote.contract == subscription and quote.subscription is None
    assert (quote.customer, quote.plan, quote.owner) == (
        subscription.customer,
        subscription.plan,
        rep,
    )
    assert quote.start_date == quote.effective_date == day("2026-03-16")
    assert quote.base_revision == subscription.revision == 0
    assert quote.billing_interval_months == 1
    # March (the period in progress) to December: 10 monthly periods left
    assert quote.term_months == 10
    assert quote.valid_until == day("2026-04-09")
    rows = [
        (row.replaces.name, row.kind, row.quantity, row.unit_price, row.discount_percent)
        for row in quote.lines.order_by("position")
    ]
    assert rows == [
        ("Platform fee", "recurring", D(1), None, None),
        ("Seats", "recurring", D(12), D("27.00"), None),
        ("API calls", "usage", D(0), None, None),
    ]
    lines = list(quote.lines.select_related("charge"))
    plan = amendment_plan(quote, lines, read_extras(lines))
    assert set(plan.status.values()) == {LineStatus.UNCHANGED} and not plan.changes


def test_a_negotiated_discount_is_restated_as_the_line_discount(db):
    """Seats listed at 25.00 with 20 % off (net 20.00): the line keeps 20 % off the list price."""
    plan = hybrid_plan()
    seats = plan.charges.get(name="Seats")
    subscription = subscription_create(
        customer=CustomerFactory(external_id="acme"),
        plan=plan,
        external_id="sub_acme",
        start_date=day("2026-01-01"),
        term_months=12,
        items=[
            ItemSpec(
                charge=seats,
                quantity=D(10),
                pricing={**seats.pricing(), "unit_price": "20.00"},
                list_pricing=seats.pricing(),
                discount_percent=D(20),
            )
        ],
    )
    quote = amend(subscription)
    seat_line = quote.lines.get()
    assert (seat_line.unit_price, seat_line.discount_percent) == (None, D(20))
    lines = list(quote.lines.select_related("charge"))
    assert not amendment_plan(quote, lines, read_extras(lines)).changes


def test_only_a_live_subscription_is_amended(db):
    subscription = contract()
    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.CANCELED)
    with pytest.raises(Conflict, match="sub_acme is canceled: only a live subscription"):
        amend(subscription)
    assert not Quote.objects.exists()


# -- acceptance changes the contract ----------------------------------------------------------


def test_a_seat_increase_ends_the_old_version_and_prorates_on_the_next_invoice(db):
    """12 → 20 seats at 30.00 from Mar 16: 16 of March's 31 days are credited for 12 seats
    (−185.81) and charged for 20 (309.68) on the April invoice."""
    subscription = contract()
    bill("2026-03-01")
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(quantity=D(20))

    accepted = accept(quote, name="Jane Doe")

    assert accepted.status == Quote.Status.ACCEPTED and accepted.subscription is None
    subscription.refresh_from_db()
    assert subscription.revision == 1
    change = SubscriptionChange.objects.get(subscription=subscription)
    assert (change.kind, change.effective_date, change.source) == (
        "amendment",
        day("2026-03-16"),
        accepted.number,
    )
    assert change.description == "Seats: 12 → 20 seats"
    assert versions(subscription) == [
        ("Platform fee", D(1), None, None),
        ("Seats", D(12), None, day("2026-03-16")),
        ("Seats", D(20), day("2026-03-16"), None),
        ("API calls", D(0), None, None),
    ]
    bill("2026-04-01")
    april = Invoice.objects.get(subscription=subscription, billing_date=day("2026-04-01"))
    prorations = list(
        april.lines.filter(kind=InvoiceLine.Kind.PRORATION)
        .order_by("id")
        .values_list("description", "amount")
    )
    assert prorations == [
        ("Unused time on 12 × Seats from Mar 16", D("-185.81")),
        ("Remaining time on 20 × Seats from Mar 16", D("309.68")),
    ]
    seats_line = april.lines.get(kind=InvoiceLine.Kind.FEE, description__startswith="Seats")
    assert seats_line.amount == D("600.00")  # 20 × 30.00 for April


def test_accepting_twice_refuses_and_changes_once(db):
    subscription = contract()
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(quantity=D(20))
    accept(quote)
    with pytest.raises(Conflict, match=r"already accepted: it amended subscription sub_acme"):
        accept(quote)
    assert SubscriptionChange.objects.count() == 1


def test_a_removed_line_ends_its_item_on_the_effective_date(db):
    subscription = contract()
    quote = amend(subscription)
    line(quote, "Seats").delete()

    accept(quote)

    assert versions(subscription) == [
        ("Platform fee", D(1), None, None),
        ("Seats", D(12), None, day("2026-03-16")),
        ("API calls", D(0), None, None),
    ]
    assert SubscriptionChange.objects.get().description == "− Seats"


def test_an_upgrade_swaps_the_plan_mid_period(db):
    subscription = contract()
    bill("2026-03-01")
    pro = PlanFactory(code="pro", name="Pro")
    ChargeFactory(plan=pro, name="Pro platform", unit_price=D("900.00"), position=0)
    quote = amend(subscription)
    quote.plan = pro
    quote.save()
    quote_populate_lines(quote=quote, replace=True)
    assert [(row.description, row.replaces_id) for row in quote.lines.all()] == [
        ("Pro platform", None)
    ]

    accept(quote)

    subscription.refresh_from_db()
    assert subscription.plan == pro
    assert versions(subscription) == [
        ("Platform fee", D(1), None, day("2026-03-16")),
        ("Seats", D(12), None, day("2026-03-16")),
        ("API calls", D(0), None, day("2026-03-16")),
        ("Pro platform", D(1), day("2026-03-16"), None),
    ]
    bill("2026-04-01")
    april = Invoice.objects.get(subscription=subscription, billing_date=day("2026-04-01"))
    prorations = list(
        april.lines.filter(kind=InvoiceLine.Kind.PRORATION)
        .order_by("id")
        .values_list("description", "amount")
    )
    # 500.00 and 12 × 30.00 credited for 16/31 of March, 900.00 charged for them
    assert [amount for _, amount in prorations] == [D("-258.06"), D("-185.81"), D("464.52")]


def test_a_quote_drafted_on_an_old_revision_is_refused_with_nothing_changed(db):
    subscription = contract()
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(quantity=D(20))
    seats = subscription.items.get(name="Seats")
    with time_machine.travel(DRAFTED, tick=False):
        subscription_set_quantity(
            subscription=subscription,
            item=seats,
            quantity=D(15),
            effective_date=day("2026-03-20"),
        )
    before = versions(subscription)

    with pytest.raises(Conflict, match="sub_acme changed since this was drafted"):
        accept(quote)

    assert versions(subscription) == before
    assert Quote.objects.get(pk=quote.pk).status == Quote.Status.DRAFT
    assert SubscriptionChange.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_amendments_of_one_subscription_one_wins():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    subscription = contract()
    quotes = [amend(subscription), amend(subscription)]
    for quote, seats in zip(quotes, (D(20), D(30)), strict=True):
        QuoteLine.objects.filter(quote=quote, description="Seats").update(quantity=seats)
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def run(quote) -> None:
        try:
            mine = Quote.objects.get(pk=quote.pk)  # each thread has its own connection
            barrier.wait(timeout=10)
            quote_accept(quote=mine)  # the clock is set once, around both threads
            outcomes[quote.pk] = "accepted"
        except Conflict as exc:
            outcomes[quote.pk] = exc.message
        except Exception as exc:
            outcomes[quote.pk] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(quote,)) for quote in quotes]
    with time_machine.travel(DRAFTED, tick=False):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert sorted(outcomes.values())[1] == "accepted"
    winner = next(pk for pk, outcome in outcomes.items() if outcome == "accepted")
    loser = next(pk for pk in outcomes if pk != winner)
    assert outcomes[loser].startswith(
        "Subscription sub_acme changed since this was drafted (amendment: Seats: 12 → "
    )
    won = Quote.objects.get(pk=winner)
    seats = D(20) if won.pk == quotes[0].pk else D(30)
    assert Quote.objects.get(pk=loser).status == Quote.Status.DRAFT
    assert won.status == Quote.Status.ACCEPTED
    subscription.refresh_from_db()
    assert subscription.revision == 1
    assert SubscriptionChange.objects.get().source == won.number
    assert versions(subscription) == [
        ("Platform fee", D(1), None, None),
        ("Seats", D(12), None, day("2026-03-16")),
        ("Seats", seats, day("2026-03-16"), None),
        ("API calls", D(0), None, None),
    ]
    assert SubscriptionItem.objects.count() == 4


# -- admin ------------------------------------------------------------------------------------


def test_the_amend_button_opens_a_prefilled_amendment_quote(db, client):
    subscription = contract()
    sales = UserFactory(username="sales", is_staff=True, is_superuser=True)
    client.force_login(sales)
    page = client.get(reverse("admin:subscriptions_subscription_change", args=[subscription.pk]))
    amend_url = reverse("admin:quotes_quote_amend", args=[subscription.pk])
    assert amend_url in page.content.decode()

    with time_machine.travel(DRAFTED, tick=False):
        form = client.get(amend_url)
        assert form.status_code == 200
        response = client.post(amend_url, {"effective_date": "2026-03-16"})

    quote = Quote.objects.get(kind=Quote.Kind.AMENDMENT)
    assert response.status_code == 302
    assert response.url == reverse("admin:quotes_quote_change", args=[quote.pk])
    assert quote.owner == sales and quote.contract == subscription
    assert quote.lines.count() == 3
    with time_machine.travel(DRAFTED, tick=False):
        page = client.get(response.url)
    assert page.status_code == 200
    shown = " ".join(strip_tags(page.content.decode()).split())
    assert "Amendment of sub_acme from Mar 16, 2026, co-termed to Dec 31, 2026" in shown
    assert "drafted on revision 0" in shown
    for name in ("Platform fee", "Seats", "API calls"):
        assert f'<td class="pr-4">{name}</td><td>Unchanged</td>' in page.content.decode()
    assert 'name="invoice_now"' in page.content.decode()
    assert 'name="start_date"' not in page.content.decode()  # the amendment's dates are fixed


def test_a_charge_of_the_plan_added_to_the_amendment_is_a_new_item(db):
    subscription = contract()
    quote = amend(subscription)
    seats = Charge.objects.get(plan=subscription.plan, name="Seats")
    QuoteLine.objects.create(
        quote=quote, kind="recurring", charge=seats, description="Extra seats", quantity=D(3)
    )
    lines = list(quote.lines.select_related("charge"))
    plan = amendment_plan(quote, lines, read_extras(lines))
    assert sorted(plan.status.values()) == ["new", "unchanged", "unchanged", "unchanged"]


def test_a_ramp_is_restated_from_the_effective_date_and_a_changed_phase_is_a_new_version(db):
    """Seats ramp 10 (Jan–Jun) then 20 (Jul–Dec) at 30.00: from Mar 16 the quote's months count
    from March, the ramp is months 1–4 at 10 and 5–10 at 20; 25 seats from July is a change."""
    plan = hybrid_plan()
    seats = plan.charges.get(name="Seats")
    terms = {**seats.pricing(), "unit_price": "30.00"}
    subscription = subscription_create(
        customer=CustomerFactory(external_id="acme"),
        plan=plan,
        external_id="sub_acme",
        start_date=day("2026-01-01"),
        term_months=12,
        items=[
            ItemSpec(
                charge=seats,
                quantity=D(10),
                pricing=terms,
                phases=[
                    PhaseSpec(day("2026-01-01"), day("2026-07-01"), D(10), terms),
                    PhaseSpec(day("2026-07-01"), day("2027-01-01"), D(20), terms),
                ],
            )
        ],
    )
    quote = amend(subscription)
    seat_line = quote.lines.get()
    assert seat_line.unit_price == D("30.00")
    phases = list(seat_line.phases.values_list("start_month", "end_month", "quantity"))
    assert phases == [(1, 4, D(10)), (5, 10, D(20))]
    lines = list(quote.lines.select_related("charge"))
    assert not amendment_plan(quote, lines, read_extras(lines)).changes

    seat_line.phases.filter(start_month=5).update(quantity=D(25))
    accept(quote)

    new = subscription.items.get(starts_on=day("2026-03-16"))
    assert [(p["start"], p["end"], D(p["quantity"])) for p in new.phases] == [
        ("2026-03-16", "2026-07-01", D(10)),
        ("2026-07-01", "2027-01-01", D(25)),
    ]
    assert subscription.items.get(starts_on=None).ends_on == day("2026-03-16")


def test_a_new_price_is_a_change_and_invoice_now_bills_the_proration_at_once(db):
    """Seats 12 at 30.00 → 12 at 35.00 from Mar 16, invoiced at once: −185.81 and
    12 × 35 × 16/31 = 216.77 on an invoice of the change's own."""
    subscription = contract()
    bill("2026-03-01")
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(unit_price=D("35.00"))
    Quote.objects.filter(pk=quote.pk).update(invoice_now=True)
    lines = list(quote.lines.select_related("charge"))
    plan = amendment_plan(quote, lines, read_extras(lines))
    assert plan.status[line(quote, "Seats").pk] == LineStatus.CHANGED

    accept(quote)

    change = SubscriptionChange.objects.get()
    assert change.invoice_now and change.description == "Seats: new terms"
    with time_machine.travel(DRAFTED, tick=False):
        billing_run(today=day("2026-03-10"))
    invoice = Invoice.objects.get(change=change)
    assert list(invoice.lines.order_by("id").values_list("amount", flat=True)) == [
        D("-185.81"),
        D("216.77"),
    ]


def test_the_pdf_is_titled_as_an_amendment(db):
    subscription = contract()
    quote = amend(subscription)
    with time_machine.travel(DRAFTED, tick=False):
        html = quote_html(Quote.objects.get(pk=quote.pk))
    assert "Amendment to subscription sub_acme, effective Mar 16, 2026" in html
    assert "Dec 31, 2026" in html  # co-termed: the contract's last day


def test_the_customer_accepts_an_amendment_in_the_portal(db, client):
    subscription = contract()
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(quantity=D(20))
    Quote.objects.filter(pk=quote.pk).update(status=Quote.Status.SENT)
    member = PortalMembershipFactory(customer=subscription.customer)
    client.force_login(member.user)

    with time_machine.travel(DRAFTED, tick=False):
        response = client.post(
            reverse("portal:quote", args=[quote.pk]),
            {"name": "Jordan Lee", "title": "CFO", "accept": "on"},
        )
        page = client.get(response["Location"]).content.decode()

    assert response.status_code == 302
    assert Quote.objects.get(pk=quote.pk).status == Quote.Status.ACCEPTED
    assert SubscriptionChange.objects.get().source == quote.number
    assert "The new terms take effect on Mar 16, 2026." in page
    assert subscription.items.filter(quantity=D(20), starts_on=day("2026-03-16")).exists()


def test_an_amendment_cannot_take_effect_before_the_period_in_progress(db):
    subscription = contract()
    with pytest.raises(ValidationError, match="cannot take effect before 2026-03-01"):
        amend(subscription, on="2026-02-20")
    assert not Quote.objects.exists()


def test_the_page_says_what_each_line_does_and_a_plan_change_back_restates_the_contract(db, client):
    subscription = contract()
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(quantity=D(20))
    line(quote, "API calls").delete()
    client.force_login(UserFactory(username="sales", is_staff=True, is_superuser=True))
    url = reverse("admin:quotes_quote_change", args=[quote.pk])
    with time_machine.travel(DRAFTED, tick=False):
        html = client.get(url).content.decode()
    for name, status in (
        ("Platform fee", "Unchanged"),
        ("Seats", "Changed"),
        ("API calls", "Removed"),
    ):
        assert f'<td class="pr-4">{name}</td><td>{status}</td>' in html

    pro = PlanFactory(code="pro", name="Pro")
    ChargeFactory(plan=pro, name="Pro platform", unit_price=D("900.00"))
    quote.refresh_from_db()
    with time_machine.travel(DRAFTED, tick=False):
        for plan in (pro, subscription.plan):
            data = change_data(quote, plan=plan.pk, title="Amendment", owner="")
            response = client.post(url, data)
            assert response.status_code == 302, response.content.decode()[:2000]
            quote.refresh_from_db()
            if plan == pro:
                assert [row.description for row in quote.lines.all()] == ["Pro platform"]
    restated = [
        (row.description, row.quantity, row.replaces_id is not None) for row in quote.lines.all()
    ]
    assert restated == [
        ("Platform fee", D(1), True),
        ("Seats", D(12), True),
        ("API calls", D(0), True),
    ]


@pytest.mark.parametrize("interval", [1, 3])
def test_a_negotiated_deal_is_restated_exactly_billed_monthly_or_quarterly(db, interval):
    """Northwind (tests/quotes/deal.py) signed through a quote: 10 % off seats with a ramp (100,
    then 150 at a negotiated 38.00 from month 13), negotiated call tiers and a 3,000.00 monthly
    minimum. An amendment from May 10, 2027 restates all of it, so nothing would change."""
    deal = northwind_deal(billing_interval_months=interval)
    with time_machine.travel("2026-12-15 09:00Z", tick=False):
        subscription = quote_accept(quote=deal).subscription
    with time_machine.travel("2027-05-05 09:00Z", tick=False):
        quote = quote_amendment_create(subscription=subscription, effective_date=day("2027-05-10"))
        totals = quote_totals(quote)

    first = 1 if interval == 1 else 0  # months count from May 1 (monthly) or Apr 1 (quarterly)
    assert quote.term_months == 21 - first
    seats, calls = line(quote, "Seats"), line(quote, "API calls")
    assert (seats.quantity, seats.unit_price, seats.discount_percent) == (D(100), None, D(10))
    assert list(seats.phases.values_list("start_month", "end_month", "quantity", "unit_price")) == [
        (1, 9 - first, D(100), None),
        (10 - first, 21 - first, D(150), D(38)),
    ]
    assert (calls.minimum_amount, calls.unit_price) == (D(3000), None)
    assert list(calls.tiers.values_list("up_to", "unit_price")) == [
        (D(2_000_000), D("0.0018")),
        (None, D("0.0009")),
    ]
    assert [row.replaces_id is not None for row in quote.lines.all()] == [True, True, True]
    lines = list(quote.lines.select_related("charge"))
    assert not amendment_plan(quote, lines, read_extras(lines)).changes
    assert totals.mrr_first > 0


def test_finance_accepts_an_amendment_for_the_customer_in_the_admin(db, client):
    """The accept page says what was amended; the sales figures count new business only."""
    subscription = contract()
    quote = amend(subscription)
    QuoteLine.objects.filter(pk=line(quote, "Seats").pk).update(quantity=D(20))
    Quote.objects.filter(pk=quote.pk).update(status=Quote.Status.SENT)
    client.force_login(UserFactory(username="sales", is_staff=True, is_superuser=True))
    url = reverse("admin:quotes_quote_workflow", args=[quote.pk, "accept"])

    with time_machine.travel(DRAFTED, tick=False):
        response = client.post(url, {"name": "Jordan Lee", "title": "CFO"}, follow=True)
        figures = sales_figures(day("2026-03-10"))

    assert f"Quote {quote.number} accepted: subscription sub_acme amended from 2026-03-16." in (
        response.content.decode()
    )
    assert SubscriptionChange.objects.get().source == quote.number
    assert figures.signed_count == 0


def test_a_cancelled_subscription_has_no_amend_button_and_its_amend_page_refuses(db, client):
    subscription = contract()
    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.CANCELED)
    client.force_login(UserFactory(username="sales", is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:subscriptions_subscription_change", args=[subscription.pk]))
    amend_url = reverse("admin:quotes_quote_amend", args=[subscription.pk])
    assert amend_url not in page.content.decode()

    response = client.post(amend_url, {"effective_date": "2026-03-16"}, follow=True)

    assert "sub_acme is canceled: only a live subscription is amended." in (
        response.content.decode()
    )
    assert not Quote.objects.exists()
