"""`manage.py seed_demo` builds the demo company through the services; a rerun is a no-op."""

from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command

from core.models import ApiKey
from customers.models import Customer, PortalMembership
from invoicing.models import Invoice
from metering.models import Event
from quotes.models import Quote
from receivables.models import Payment, PaymentAllocation
from revrec.models import RevenueSchedule, RevenueScheduleLine
from subscriptions.models import Subscription

EVENTS = "30"  # per subscription and 100 days: enough to bill usage, small enough to be quick


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--events-per-subscription", EVENTS, stdout=out)
    return out.getvalue()


def counts() -> dict:
    users = get_user_model().objects
    return {
        "customers": Customer.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "quotes": dict(Counter(Quote.objects.values_list("status", flat=True))),
        "invoices": dict(Counter(Invoice.objects.values_list("status", flat=True))),
        "invoice_numbers": sorted(Invoice.objects.values_list("number", flat=True)),
        "events": Event.objects.count(),
        "payments": Payment.objects.count(),
        "allocations": PaymentAllocation.objects.count(),
        "schedules": RevenueSchedule.objects.count(),
        "recognized": RevenueScheduleLine.objects.exclude(recognized_at=None).count(),
        "users": sorted(users.values_list("username", flat=True)),
        "superusers": sorted(users.filter(is_superuser=True).values_list("username", flat=True)),
        "staff": sorted(users.filter(is_staff=True).values_list("username", flat=True)),
        "sales": sorted(users.filter(groups__name="Sales").values_list("username", flat=True)),
        "finance": sorted(users.filter(groups__name="Finance").values_list("username", flat=True)),
        "api_keys": ApiKey.objects.count(),
    }


@pytest.mark.django_db
@time_machine.travel("2026-11-28 12:00Z", tick=False)
def test_seed_demo_builds_the_company_once():
    first_output = seed()
    first = counts()

    assert first["customers"] == 20
    assert first["subscriptions"] == 17
    assert first["quotes"] == {"accepted": 17, "declined": 2, "expired": 2, "sent": 2, "draft": 2}
    assert first["invoices"] == {"paid": 48, "finalized": 20}
    assert first["invoice_numbers"] == [f"INV-{n:06d}" for n in range(1, 69)]
    assert first["events"] > 0 and first["payments"] == first["allocations"] == 50
    assert first["schedules"] == 17 and first["recognized"] > 0
    assert first["users"] == ["admin", "customer", "finance", "sales"]
    assert first["superusers"] == ["admin"]
    assert first["staff"] == ["admin", "finance", "sales"]
    assert (first["sales"], first["finance"]) == (["sales"], ["finance"])
    assert first["api_keys"] == 1
    assert "q2c_" in first_output  # the new key is printed once

    # Every accepted quote made its subscription, with the negotiated terms.
    northwind = Subscription.objects.get(external_id="sub_northwind_growth")
    assert northwind.quote.status == Quote.Status.ACCEPTED
    assert northwind.items.get(name="Seats").quantity == 12
    atlas = Subscription.objects.get(external_id="sub_atlas_enterprise")
    assert Decimal(atlas.items.get(name="Platform fee").pricing["unit_price"]) == 2000

    # Invoices are issued on their billing dates, so aging is realistic.
    issued = Invoice.objects.exclude(status=Invoice.Status.DRAFT)
    assert all(i.issue_date == i.billing_date for i in issued)
    assert issued.filter(status=Invoice.Status.FINALIZED, due_date__lt="2026-11-28").exists()
    assert all(i.total == i.subtotal + i.tax_amount for i in issued)
    assert issued.filter(lines__kind="usage", lines__amount__gt=0).exists()

    # The portal login sees Northwind, which has paid and open invoices.
    membership = PortalMembership.objects.get(user__username="customer")
    assert membership.customer.external_id == "cust_northwind"
    statuses = set(membership.customer.invoices.values_list("status", flat=True))
    assert statuses == {Invoice.Status.PAID, Invoice.Status.FINALIZED}

    # A second run changes nothing.
    second_output = seed()
    assert counts() == first
    assert "no changes" in second_output
    assert "q2c_" not in second_output and "exists" in second_output
