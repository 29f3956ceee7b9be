"""Finance changes a quantity and cancels a subscription from its admin page; the page shows the
item versions, the change history and the cancellation; a refusal is shown on the field and
saves nothing; only `subscriptions.change_contract` (Finance) may."""

from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse

from invoicing.models import CreditNote, Invoice
from subscriptions.models import Subscription, SubscriptionChange
from tests.factories import UserFactory
from tests.invoicing.test_cancellations import bill, seats_subscription


def flat(response) -> str:
    return " ".join(response.content.decode().split())


@pytest.fixture
def world(client, db):
    subscription = seats_subscription()
    bill("2026-01-01")
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    with time_machine.travel("2026-01-10 10:00Z", tick=False):
        client.force_login(user)
        yield subscription


def seats(subscription):
    return subscription.items.get(name="Seats", ends_on=None)


def test_finance_changes_the_seats_and_the_proration_is_invoiced_at_once(client, world):
    url = reverse("subscriptions-change-quantity", args=[world.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert ">Changethequantity<" in "".join(page.content.decode().split())
    assert "Seats (12 seats)" in flat(page) and "API calls" not in flat(page)

    done = client.post(
        url,
        {
            "item": seats(world).pk,
            "quantity": "20",
            "effective_date": "2026-01-16",
            "invoice_now": "on",
            "reason": "New team",
        },
        follow=True,
    )

    # 8 more seats × 30.00 × 16/31 days = 123.87, on an invoice of its own
    assert "Seats: 12 → 20 seats from 2026-01-16. Invoice INV-000002 issued for $123.87." in (
        flat(done)
    )
    change = SubscriptionChange.objects.get()
    assert (change.kind, change.by.username, change.reason, change.source) == (
        "quantity",
        "fin",
        "New team",
        "admin",
    )
    assert Invoice.objects.get(change=change).total == Decimal("123.87")
    # The subscription page shows both versions and the history
    shown = flat(client.get(reverse("admin:subscriptions_subscription_change", args=[world.pk])))
    assert "from the start to Jan 15, 2026" in shown
    assert "from Jan 16, 2026, to the end of the term" in shown
    assert "added by: quantity change" in shown and "ended by: quantity change" in shown
    assert "Seats: 12 → 20 seats" in shown and "New team" in shown and "fin" in shown


def test_a_refused_quantity_change_is_shown_on_the_field_and_saves_nothing(client, world):
    url = reverse("subscriptions-change-quantity", args=[world.pk])

    early = client.post(
        url,
        {"item": seats(world).pk, "quantity": "20", "effective_date": "2025-12-20", "reason": "x"},
    )
    same = client.post(
        url,
        {"item": seats(world).pk, "quantity": "12", "effective_date": "2026-01-16", "reason": "x"},
    )

    assert early.status_code == 200
    assert early.context["form"].errors["effective_date"] == [
        "The change must take effect within the term, 2026-01-01 to 2026-12-31 (the term's end "
        "does not move), not on 2025-12-20."
    ]
    assert same.context["form"].errors["quantity"] == ["'Seats' already has 12 seats."]
    assert SubscriptionChange.objects.count() == 0 and Invoice.objects.count() == 1


def test_finance_cancels_from_a_date_and_the_credit_note_is_issued_at_once(client, world):
    url = reverse("subscriptions-cancel", args=[world.pk])
    page = flat(client.get(url))
    assert "At the end of the period in progress (Feb 1, 2026)" in page
    assert ">Cancel the subscription<" in page.replace("> ", ">").replace(" <", "<")

    no_date = client.post(url, {"when": "date", "reason": "Budget"})
    assert no_date.context["form"].errors["effective_date"] == ["Give the date the service ends."]
    done = client.post(
        url,
        {"when": "date", "effective_date": "2026-01-16", "reason": "Moving to a competitor"},
        follow=True,
    )

    assert (
        "sub_acme cancelled from 2026-01-16. Credit note CN-000001 issued for $443.87 on "
        "invoice INV-000001." in flat(done)
    )
    world.refresh_from_db()
    assert (world.status, world.canceled_by.username, world.cancel_reason) == (
        Subscription.Status.CANCELED,
        "fin",
        "Moving to a competitor",
    )
    assert CreditNote.objects.get().change.kind == "cancellation"
    shown = flat(client.get(reverse("admin:subscriptions_subscription_change", args=[world.pk])))
    assert (
        "Service ends Jan 16, 2026 (not included) · cancelled by fin on Jan 10, 2026<br>Why: "
        "Moving to a competitor" in shown
    )
    # A cancelled subscription offers neither action, and its pages send back
    assert "Cancel subscription" not in shown and "Change quantity" not in shown
    again = client.get(url)
    assert again.status_code == 302


def test_cancel_at_the_end_of_the_period_issues_no_credit_note(client, world):
    url = reverse("subscriptions-cancel", args=[world.pk])

    client.post(url, {"when": "period_end", "reason": "Budget"})

    world.refresh_from_db()
    assert world.canceled_on.isoformat() == "2026-02-01"
    assert CreditNote.objects.count() == 0


def test_a_date_outside_the_term_is_refused_on_the_field(client, world):
    url = reverse("subscriptions-cancel", args=[world.pk])

    answer = client.post(url, {"when": "date", "effective_date": "2028-01-01", "reason": "x"})

    assert "within the term" in answer.context["form"].errors["effective_date"][0]
    world.refresh_from_db()
    assert world.status == "active" and SubscriptionChange.objects.count() == 0


def test_only_change_contract_may_change_or_cancel(client, world):
    sales = UserFactory(username="rep", is_staff=True)
    sales.groups.add(Group.objects.get(name="Sales"))
    client.force_login(sales)

    page = flat(client.get(reverse("admin:subscriptions_subscription_change", args=[world.pk])))
    cancel = client.post(
        reverse("subscriptions-cancel", args=[world.pk]), {"when": "period_end", "reason": "x"}
    )
    quantity = client.get(reverse("subscriptions-change-quantity", args=[world.pk]))

    assert "Cancel subscription" not in page
    assert (cancel.status_code, quantity.status_code) == (403, 403)
    world.refresh_from_db()
    assert world.status == "active"


def test_finance_sees_the_actions_on_a_live_subscription(client, world):
    page = flat(client.get(reverse("admin:subscriptions_subscription_change", args=[world.pk])))

    assert "Change quantity" in page and "Cancel subscription" in page
    assert "No change since the contract was signed." in page


def test_a_cancellation_stands_when_billing_fails_and_the_next_run_settles_it(
    client, world, monkeypatch
):
    from core.errors import ValidationError
    from invoicing import services

    def broken(**kwargs):
        raise ValidationError("the tax service is down")

    monkeypatch.setattr(services, "subscription_bill", broken)
    done = client.post(
        reverse("subscriptions-cancel", args=[world.pk]),
        {"when": "date", "effective_date": "2026-01-16", "reason": "Budget"},
        follow=True,
    )
    monkeypatch.undo()

    assert (
        "sub_acme cancelled from 2026-01-16. Not settled yet (the tax service is down): the next "
        "billing run retries." in flat(done)
    )
    assert CreditNote.objects.count() == 0
    bill("2026-01-10")
    assert CreditNote.objects.get().total == Decimal("443.87")
