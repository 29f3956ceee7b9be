"""quote_accept: the accepted quote becomes the contract, in one transaction and exactly once."""

import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from catalog.models import Charge
from core.errors import Conflict, ValidationError
from quotes.models import Quote
from quotes.services import (
    quote_accept,
    quote_decline,
    quote_mark_sent,
    quote_populate_lines,
    quote_submit,
)
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem
from tests.factories import CustomerFactory, QuoteFactory, day, hybrid_plan

TODAY = "2026-01-10 09:00Z"


def written() -> tuple[int, int, int]:
    """What acceptance writes: subscriptions, their items and their billing periods."""
    return (
        Subscription.objects.count(),
        SubscriptionItem.objects.count(),
        BillingPeriod.objects.count(),
    )


def sent_quote(**fields) -> Quote:
    """A sent quote for acme: platform fee 500, 12 seats negotiated at 22.50, calls at 0.002."""
    if "customer" not in fields:
        fields["customer"] = CustomerFactory(external_id="acme")
    if "plan" not in fields:
        fields["plan"] = hybrid_plan()
    quote = QuoteFactory(
        start_date=day("2026-02-01"),
        term_months=3,
        valid_until=day("2026-01-31"),
        subscription_external_id="sub_acme",
        **fields,
    )
    quote_populate_lines(quote=quote)
    seats = quote.lines.get(description="Seats")
    seats.quantity, seats.unit_price = Decimal("12"), Decimal("22.50")
    seats.save()
    return quote_mark_sent(quote=quote_submit(quote=quote))


def assert_untouched(quote: Quote, status: str, history: int) -> None:
    quote.refresh_from_db()
    assert (quote.status, quote.subscription_id, quote.accepted_at) == (status, None, None)
    assert quote.history.count() == history
    assert written() == (0, 0, 0)


@time_machine.travel(TODAY, tick=False)
def test_accepting_creates_one_subscription_with_the_quoted_prices(db):
    # Given
    quote = sent_quote()

    # When
    quote = quote_accept(quote=quote)

    # Then exactly one subscription, with the quote's terms
    subscription = Subscription.objects.get()
    assert quote.subscription == subscription
    assert quote.status == Quote.Status.ACCEPTED
    assert quote.accepted_at.isoformat() == "2026-01-10T09:00:00+00:00"
    assert (
        subscription.external_id,
        subscription.customer.external_id,
        subscription.start_date,
        subscription.term_months,
        subscription.currency,
    ) == ("sub_acme", "acme", day("2026-02-01"), 3, "USD")

    # and items that snapshot the quoted prices (the negotiated seat price, not the catalog's)
    items = [
        (i.name, i.quantity, i.pricing["model"], Decimal(i.pricing["unit_price"]))
        for i in subscription.items.all()
    ]
    assert items == [
        ("Platform fee", Decimal("1"), "standard", Decimal("500")),
        ("Seats", Decimal("12"), "standard", Decimal("22.50")),
        ("API calls", Decimal("0"), "standard", Decimal("0.002")),
    ]

    # and its schedule: 3 monthly periods, each billing 500 + 12 × 22.50 = 770.00 in advance
    assert [
        (p.start_date, p.end_date, p.advance_amount) for p in subscription.billing_periods.all()
    ] == [
        (day("2026-02-01"), day("2026-03-01"), Decimal("770.00")),
        (day("2026-03-01"), day("2026-04-01"), Decimal("770.00")),
        (day("2026-04-01"), day("2026-05-01"), Decimal("770.00")),
    ]


@time_machine.travel(TODAY, tick=False)
def test_changing_the_catalog_afterwards_does_not_change_the_contract(db):
    # Given an accepted quote
    quote = quote_accept(quote=sent_quote())
    plan = quote.plan

    # When finance raises every catalog price
    Charge.objects.filter(plan=plan).update(unit_price=Decimal("999"))
    for charge in plan.charges.all():
        charge.unit_price = Decimal("1000")
        charge.save()

    # Then the subscription keeps the prices it snapshotted
    prices = [
        (i.name, Decimal(i.pricing["unit_price"]))
        for i in SubscriptionItem.objects.filter(subscription=quote.subscription)
    ]
    assert prices == [
        ("Platform fee", Decimal("500")),
        ("Seats", Decimal("22.50")),
        ("API calls", Decimal("0.002")),
    ]
    assert {p.advance_amount for p in quote.subscription.billing_periods.all()} == {
        Decimal("770.00")
    }


@time_machine.travel(TODAY, tick=False)
def test_accepting_twice_is_a_conflict_and_still_one_subscription(db):
    # Given an accepted quote
    quote = quote_accept(quote=sent_quote())
    history = quote.history.count()

    # When it is accepted again
    with pytest.raises(Conflict) as caught:
        quote_accept(quote=quote)

    # Then
    assert caught.value.message == (
        f"Quote {quote.number} was already accepted: it created subscription sub_acme."
    )
    assert written() == (1, 3, 3)
    assert quote.history.count() == history


@time_machine.travel(TODAY, tick=False)
def test_accepting_an_expired_quote_writes_nothing(db):
    # Given a quote valid until yesterday
    quote = sent_quote()
    Quote.objects.filter(pk=quote.pk).update(valid_until=day("2026-01-09"))
    history = quote.history.count()

    # When
    with pytest.raises(ValidationError) as caught:
        quote_accept(quote=quote)

    # Then
    assert caught.value.message == (
        f"Quote {quote.number} expired on 2026-01-09: extend its validity or make a new quote "
        "before accepting."
    )
    assert_untouched(quote, Quote.Status.SENT, history)


@time_machine.travel("2026-01-31 23:30Z", tick=False)
def test_a_quote_can_be_accepted_on_its_last_valid_day(db):
    quote = quote_accept(quote=sent_quote())  # valid until 2026-01-31

    assert quote.status == Quote.Status.ACCEPTED
    assert written() == (1, 3, 3)


@time_machine.travel(TODAY, tick=False)
def test_a_declined_quote_cannot_be_accepted(db):
    # Given
    quote = quote_decline(quote=sent_quote())
    history = quote.history.count()

    # When
    with pytest.raises(Conflict) as caught:
        quote_accept(quote=quote)

    # Then
    assert caught.value.message == f"Quote {quote.number} is declined; it cannot become accepted."
    assert_untouched(quote, Quote.Status.DECLINED, history)


@time_machine.travel(TODAY, tick=False)
def test_a_quote_in_another_currency_than_the_customers_writes_nothing(db):
    # Given a USD customer quoted on a plan sold only in EUR
    plan = hybrid_plan(currency="EUR")
    quote = QuoteFactory(customer=CustomerFactory(external_id="acme"), plan=plan)

    # When its lines are built from the plan
    with pytest.raises(ValidationError) as caught:
        quote_populate_lines(quote=quote)

    # Then
    assert caught.value.message == (
        f"Plan '{plan.code}' is sold in EUR but {quote.customer} is billed in USD: choose a "
        "plan in the customer's currency."
    )
    assert (quote.lines.count(), written()) == (0, (0, 0, 0))


@time_machine.travel(TODAY, tick=False)
def test_a_quote_whose_subscription_id_is_taken_writes_nothing(db):
    # Given sub_acme already exists (from another accepted quote)
    customer = CustomerFactory(external_id="acme")
    quote_accept(quote=sent_quote(customer=customer))
    second = sent_quote(customer=customer)
    history = second.history.count()

    # When
    with pytest.raises(ValidationError) as caught:
        quote_accept(quote=second)

    # Then
    assert caught.value.message == "A subscription with external id 'sub_acme' already exists."
    second.refresh_from_db()
    assert (second.status, second.subscription_id) == (Quote.Status.SENT, None)
    assert second.history.count() == history
    assert written() == (1, 3, 3)


@time_machine.travel(TODAY, tick=False)
def test_a_quote_without_lines_cannot_be_accepted(db):
    quote = QuoteFactory(customer=CustomerFactory(), plan=hybrid_plan())
    history = quote.history.count()

    with pytest.raises(ValidationError) as caught:
        quote_accept(quote=quote)

    assert caught.value.message == (f"Quote {quote.number} has no lines: add at least one.")
    assert_untouched(quote, Quote.Status.DRAFT, history)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_accepts_make_one_subscription_and_one_conflict():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")

    # Given a sent quote
    with time_machine.travel(TODAY, tick=False):
        quote = sent_quote()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept() -> None:
        try:
            mine = Quote.objects.get(pk=quote.pk)  # each thread has its own connection
            barrier.wait(timeout=10)
            quote_accept(quote=mine)
            outcomes.append("accepted")
        except Conflict:
            outcomes.append("conflict")
        except Exception as exc:  # anything else is a failure of the test, reported below
            outcomes.append(repr(exc))
        finally:
            connection.close()

    # When two requests accept it at the same moment
    with time_machine.travel(TODAY, tick=False):
        threads = [threading.Thread(target=accept) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # Then one wins and the other is told it was already accepted
    assert sorted(outcomes) == ["accepted", "conflict"]
    assert written() == (1, 3, 3)
    quote.refresh_from_db()
    assert quote.status == Quote.Status.ACCEPTED
    assert quote.subscription == Subscription.objects.get()
