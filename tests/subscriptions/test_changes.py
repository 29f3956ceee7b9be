"""Changes of a live contract: refused with a message and nothing changed when they cannot
apply, and one winner when two arrive at once."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from core.errors import Conflict, ValidationError
from subscriptions.changes import subscription_cancel, subscription_set_quantity
from subscriptions.models import Subscription, SubscriptionChange, SubscriptionItem
from tests.factories import day
from tests.invoicing.test_proration import basic_plan, item, subscribe

D = Decimal


def seats(subscription, quantity, on="2026-03-16", today="2026-03-10", **kwargs):
    return subscription_set_quantity(
        subscription=subscription,
        item=item(subscription, "Seats", on),
        quantity=D(quantity),
        effective_date=day(on),
        today=day(today),
        **kwargs,
    )


def snapshot(subscription):
    rows = SubscriptionItem.objects.filter(subscription=subscription).order_by("id")
    return list(rows.values_list("name", "quantity", "starts_on", "ends_on"))


@pytest.mark.parametrize(
    ("on", "today", "message"),
    [
        (
            "2027-01-01",
            "2026-03-10",
            "The change must take effect within the term, 2026-01-01 to 2026-12-31 (the term's "
            "end does not move), not on 2027-01-01.",
        ),
        (
            "2026-02-20",
            "2026-03-10",
            "The change cannot take effect before 2026-03-01, the start of the billing period in "
            "progress: earlier periods are invoiced (correct them with a credit note).",
        ),
    ],
)
def test_a_change_outside_what_can_change_is_refused_and_changes_nothing(db, on, today, message):
    subscription = subscribe(basic_plan())
    before = snapshot(subscription)

    with pytest.raises(ValidationError) as refused:
        seats(subscription, "20", on=on, today=today)

    assert refused.value.message == message
    assert snapshot(subscription) == before
    assert not SubscriptionChange.objects.exists()


def test_usage_and_an_unchanged_quantity_are_refused_with_the_reason(db):
    subscription = subscribe(basic_plan())
    calls = item(subscription, "API calls", "2026-03-16")

    with pytest.raises(ValidationError, match="is usage: it is billed as measured"):
        subscription_set_quantity(
            subscription=subscription,
            item=calls,
            quantity=D("5"),
            effective_date=day("2026-03-16"),
            today=day("2026-03-10"),
        )
    with pytest.raises(ValidationError, match="'Seats' already has 12 seats"):
        seats(subscription, "12")


def test_a_change_drafted_on_an_older_revision_is_refused_naming_what_changed(db):
    subscription = subscribe(basic_plan())
    seats(subscription, "20")
    before = snapshot(subscription)

    with pytest.raises(Conflict) as refused:
        seats(subscription, "25", on="2026-04-01", expected_revision=0)

    assert refused.value.message == (
        "Subscription sub_acme changed since this was drafted (quantity change: Seats: 12 → 20 "
        "seats): start again from the contract in force."
    )
    assert snapshot(subscription) == before


def test_a_cancelled_subscription_refuses_changes(db):
    subscription = subscribe(basic_plan())
    subscription_cancel(
        subscription=subscription,
        reason="Moving to a competitor",
        effective_date=day("2026-03-16"),
        today=day("2026-03-10"),
    )

    with pytest.raises(Conflict, match="is canceled: only a live subscription can change"):
        seats(subscription, "20", on="2026-03-10")


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_changes_of_one_revision_one_wins_nothing_half_applied():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    subscription = subscribe(basic_plan())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def change(quantity: str) -> None:
        try:
            mine = Subscription.objects.get(pk=subscription.pk)  # own connection per thread
            barrier.wait(timeout=10)
            seats(mine, quantity, expected_revision=0)
            outcomes.append(f"applied {quantity}")
        except Conflict as exc:
            outcomes.append(exc.message)
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(q,)) for q in ("20", "30")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    applied = [o for o in outcomes if o.startswith("applied")]
    refused = [o for o in outcomes if not o.startswith("applied")]
    assert len(applied) == 1 and len(refused) == 1, outcomes
    winner = applied[0].removeprefix("applied ")
    assert refused[0].startswith("Subscription sub_acme changed since this was drafted")
    subscription.refresh_from_db()
    assert subscription.revision == 1
    assert SubscriptionChange.objects.count() == 1
    assert snapshot(subscription) == [
        ("Platform fee", D("1"), None, None),
        ("Seats", D("12"), None, day("2026-03-16")),
        ("API calls", D("0"), None, None),
        ("Seats", D(winner), day("2026-03-16"), None),
    ]
