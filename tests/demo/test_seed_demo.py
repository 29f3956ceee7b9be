"""`manage.py seed_demo` builds the demo company through the services; a rerun is a no-op."""

import datetime as dt
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Sum

from catalog.models import Charge
from core.models import ApiKey
from customers.models import Customer, PortalMembership
from invoicing.models import CreditNote, Invoice, InvoiceLine
from metering.models import Event
from quotes.models import Quote
from quotes.pricing import list_pricing
from receivables.models import Payment, PaymentAllocation, Refund, WriteOff
from revrec.models import RevenueSchedule, RevenueScheduleLine
from subscriptions.models import PrepaidCredit, Subscription

EVENTS = "300"  # per subscription and 100 days: enough to bill usage and use up credits; quick


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--events-per-subscription", EVENTS, stdout=out)
    return out.getvalue()


def counts() -> dict:
    users = get_user_model().objects
    return {
        "customers": Customer.objects.count(),
        "eur_customers": Customer.objects.filter(currency="EUR").count(),
        "charges": Charge.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "prepaid_credits": PrepaidCredit.objects.count(),
        "quotes": dict(Counter(Quote.objects.values_list("status", flat=True))),
        "invoices": dict(Counter(Invoice.objects.values_list("status", flat=True))),
        "invoice_numbers": sorted(Invoice.objects.values_list("number", flat=True)),
        "eur_invoices": Invoice.objects.filter(currency="EUR").count(),
        "lines": dict(Counter(InvoiceLine.objects.values_list("kind", flat=True))),
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
        "operator": sorted(
            users.filter(groups__name="Operator").values_list("username", flat=True)
        ),
        "api_keys": ApiKey.objects.count(),
    }


def assert_journal_ties_out() -> None:
    from core.money import exact_sum
    from invoicing.balance import credit_balances
    from revrec.models import JournalEntry, JournalLine
    from revrec.selectors import account_balances

    assert (
        JournalEntry.objects.filter(kind="invoice").count()
        == Invoice.objects.exclude(status="draft").exclude(subtotal=0, tax_amount=0).count()
    )
    rows = JournalLine.objects.values_list("debit", "credit")
    assert exact_sum(d for d, _ in rows) == exact_sum(c for _, c in rows)
    for person in Customer.objects.all():
        balances = account_balances(customer=person)
        for currency in {str(c) for c in person.invoices.values_list("currency", flat=True)}:
            invoices = person.invoices.filter(currency=currency)
            open_ = exact_sum(i.open_amount for i in invoices)
            assert balances.get(("accounts_receivable", currency), 0) == open_, person
            credit = credit_balances(person).get((person.pk, currency), 0)
            assert balances.get(("customer_credit", currency), 0) == credit, person


def list_unit_price(line) -> Decimal:
    """A quote line's list unit price (its charge's, in force on the quote's start date)."""
    return Decimal(list_pricing(line)["unit_price"])


@pytest.mark.django_db
@time_machine.travel("2026-11-28 12:00Z", tick=False)
def test_seed_demo_builds_the_company_once():
    first_output = seed()
    first = counts()

    assert first["customers"] == 22 and first["eur_customers"] == 2
    assert first["charges"] == 17  # 3 plans × 4 prices, Growth's 4 in EUR, 1 later version
    assert first["subscriptions"] == 19 and first["prepaid_credits"] == 2
    # with today's three deals: one in review (a rule applies), one sent, one draft
    assert first["quotes"] == {
        "accepted": 19,
        "declined": 2,
        "expired": 2,
        "sent": 3,
        "draft": 4,
        "in_review": 1,
    }
    # (Brightpath's returned ACH debit reopened one; Fernhill's written-off invoice counts as
    # paid: nothing is left open on it)
    assert first["invoices"] == {"paid": 54, "finalized": 22}
    assert first["invoice_numbers"] == [f"INV-{n:06d}" for n in range(1, 77)]
    assert first["eur_invoices"] == 8
    # (Meridian, cancelled 25 days ago, is not billed its next month's fees; Kestrel's seat
    # change is prorated on its next invoice.)
    assert first["lines"] == {
        "fee": 150,
        "usage": 114,
        "true_up": 12,
        "credit": 3,
        "proration": 2,
    }
    # 56 payments, each applied to its invoice; and Solace's and Meridian's over-payments put
    # on account, Brightpath's returned debit taken back
    assert first["events"] > 0 and (first["payments"], first["allocations"]) == (56, 59)
    assert first["schedules"] == 19 and first["recognized"] > 0
    assert first["users"] == ["admin", "customer", "finance", "operator", "sales"]
    assert first["superusers"] == ["admin"]
    assert first["staff"] == ["admin", "finance", "operator", "sales"]
    assert (first["sales"], first["finance"], first["operator"]) == (
        ["sales"],
        ["finance"],
        ["operator"],
    )
    assert first["api_keys"] == 1
    # The journal job ran with the days: debits = credits, and per customer and currency
    # Accounts receivable = their open invoices, Customer credit balances = their credit balance
    assert_journal_ties_out()
    assert "q2c_" in first_output  # the new key is printed once

    # Every accepted quote made its subscription, with the negotiated terms.
    northwind = Subscription.objects.get(external_id="sub_northwind_growth")
    assert northwind.quote.status == Quote.Status.ACCEPTED
    assert northwind.items.get(name="Seats").quantity == 12
    atlas = Subscription.objects.get(external_id="sub_atlas_enterprise")
    assert Decimal(atlas.items.get(name="Platform fee").pricing["unit_price"]) == 2000

    # Contract changes: Kestrel's seats 20 → 28 in the middle of a month, Meridian cancelled.
    kestrel = Subscription.objects.get(external_id="sub_kestrel_growth")
    (change,) = kestrel.changes.all()
    assert change.description == "Seats: 20 → 28 seats" and change.by.username == "finance"
    unused, remaining = InvoiceLine.objects.filter(kind="proration").order_by("amount")
    assert unused.amount < 0 < remaining.amount
    assert unused.invoice == remaining.invoice and unused.invoice.subscription == kestrel
    meridian = Subscription.objects.get(external_id="sub_meridian_growth")
    assert meridian.status == Subscription.Status.CANCELED
    assert meridian.canceled_on == meridian.changes.get().effective_date
    (unused_time,) = CreditNote.objects.filter(change=meridian.changes.get())
    assert unused_time.total > 0 and unused_time.number.startswith("CN-")

    # Invoices are issued on their billing dates, so aging is realistic.
    issued = Invoice.objects.exclude(status=Invoice.Status.DRAFT)
    assert all(i.issue_date == i.billing_date for i in issued)
    assert issued.filter(status=Invoice.Status.FINALIZED, due_date__lt="2026-11-28").exists()
    assert all(i.total == i.subtotal + i.tax_amount for i in issued)
    assert issued.filter(lines__kind="usage", lines__amount__gt=0).exists()

    # Graduated tokens on Growth and Enterprise; Enterprise commits to a minimum, topped up by a
    # true-up line when usage falls short (every month at this test's small volume).
    for sub in Subscription.objects.exclude(plan__code="starter"):
        tokens = sub.items.get(name="Tokens").pricing
        assert tokens["model"] == "graduated" and len(tokens["tiers"]) == 3
        assert ("min_amount" in tokens) == (sub.plan.code == "enterprise")
    true_ups = InvoiceLine.objects.filter(kind=InvoiceLine.Kind.TRUE_UP)
    assert {line.invoice.subscription.plan.code for line in true_ups} == {"enterprise"}
    assert all(line.amount > 0 for line in true_ups)

    # Starter: 1,000 API calls a month free, and a 14-day trial, so its first invoice bills the
    # rest of the first month, prorated.
    calls = InvoiceLine.objects.filter(
        invoice__subscription__plan__code="starter", description="API calls"
    )
    assert calls and all(line.explanation[0]["description"].startswith("free") for line in calls)
    prorated = InvoiceLine.objects.filter(kind="fee", description__contains="(prorated 17/31 days)")
    assert prorated.count() == 10  # platform fee and seats of the 5 Starter subscriptions
    for sub in Subscription.objects.filter(plan__code="starter"):
        first_invoice = sub.invoices.order_by("billing_date").first()
        assert sub.trial_end_date == first_invoice.billing_date
        assert first_invoice.billing_date == sub.start_date + dt.timedelta(days=14)
        fee = first_invoice.lines.get(description__startswith="Platform fee")
        assert fee.amount == Decimal("54.29")  # 99 × 17/31

    # Growth in euros: EUR customers, EUR prices, EUR invoices with their VAT.
    eur = Invoice.objects.filter(currency="EUR")
    assert {i.customer.external_id for i in eur} == {"cust_kranich", "cust_sillon"}
    assert {i.tax_rate for i in eur} == {19, 20}
    assert {line.item.charge.currency for i in eur for line in i.lines.exclude(item=None)} == {
        "EUR"
    }
    assert all(i.total == i.subtotal + i.tax_amount for i in eur)

    # Starter's list price rises on the first day of next month: running subscriptions keep 99,
    # a quote that starts from then shows 119.
    version = Charge.objects.get(
        plan__code="starter", key="platform-fee", effective_from__isnull=False
    )
    assert version.effective_from == dt.date(2026, 12, 1) and version.unit_price == 119
    for sub in Subscription.objects.filter(plan__code="starter"):
        assert Decimal(sub.items.get(name="Platform fee").pricing["unit_price"]) == 99
    draft = Quote.objects.get(subscription_external_id="sub_ravenwood_starter")
    assert draft.status == Quote.Status.DRAFT and draft.start_date == version.effective_from
    assert draft.lines.get(description="Platform fee").charge == version
    assert draft.lines.get(description="Platform fee").unit_price is None  # the list price
    assert list_unit_price(draft.lines.get(description="Platform fee")) == 119

    # Today's deals: Orbitra's ramped expansion waits for finance (25 % off seats trips the 20 %
    # line rule), Northwind's renewal was approved (no rule applies) and sent to its billing
    # address, Greenfield's is a draft.
    deals = {
        q.subscription_external_id: q
        for q in Quote.objects.filter(subscription_external_id__in=[
            "sub_orbitra_enterprise_2y", "sub_northwind_growth_renewal", "sub_greenfield_growth"
        ])
    }  # fmt: skip
    orbitra = deals["sub_orbitra_enterprise_2y"]
    assert orbitra.status == Quote.Status.IN_REVIEW
    assert orbitra.approval_reasons == [
        "Line discount above 20 %: 'Seats' is discounted 25 %, above 20 %."
    ]
    renewal = deals["sub_northwind_growth_renewal"]
    assert (renewal.status, renewal.sent_to) == (Quote.Status.SENT, "ap@northwind.example")
    assert [s.to_status for s in renewal.status_changes.all()] == ["approved", "sent"]
    assert deals["sub_greenfield_growth"].status == Quote.Status.DRAFT

    # Vectorforge's launch pack (2M tokens and 100.00 USD) is drawn down by its first invoices.
    credits = {c.metric_id and c.metric.code: c for c in PrepaidCredit.objects.all()}
    assert {c.subscription.external_id for c in credits.values()} == {"sub_vectorforge_growth"}
    assert credits["tokens"].granted == 2_000_000 and credits[None].granted == 100
    assert credits[None].granted_on == credits[None].subscription.start_date
    credit_lines = InvoiceLine.objects.filter(kind=InvoiceLine.Kind.CREDIT)
    assert all(line.amount < 0 for line in credit_lines)
    assert -sum(line.amount for line in credit_lines) + credits[None].remaining == 100
    for credit in credits.values():
        used = sum(u.amount for u in credit.uses.all())
        assert used > 0 and used + credit.remaining == credit.granted

    # A month of collections, none touching an invoice past due today: the overdue figure is
    # that of the demo without them (3,643.35 USD on 7 invoices at this test's usage volume).
    today = dt.date(2026, 11, 28)
    late = [i for i in Invoice.objects.filter(status="finalized") if i.due_date < today]
    assert (len(late), sum(i.open_amount for i in late)) == (7, Decimal("3643.35"))
    # Solace's first payment of the last 55 days was rounded up to the next hundred: the 43.29
    # over went on account and its next invoice took it at finalization.
    solace = Customer.objects.get(external_id="cust_solace")
    entries = solace.credit_balance_entries.order_by("effective_on", "id")
    assert [(e.kind, e.amount, e.invoice and e.invoice.number) for e in entries] == [
        ("payment", Decimal("43.29"), None),
        ("applied", Decimal("-43.29"), "INV-000064"),
    ]
    assert Invoice.objects.get(number="INV-000064").status == Invoice.Status.PAID
    # Meridian paid the invoice its cancellation credited at its full total; the 460.09 on
    # account was refunded a week later.
    (refund,) = Refund.objects.all()
    assert (refund.customer.external_id, refund.amount, refund.refunded_on) == (
        "cust_meridian",
        Decimal("460.09"),
        dt.date(2026, 11, 19),
    )
    assert refund.customer.credit_balance_entries.aggregate(s=Sum("amount"))["s"] == 0
    # Brightpath's ACH debit came back three days later: its invoice, not yet due, is open again.
    (returned,) = Payment.objects.exclude(reversed_on=None)
    assert (returned.reference, returned.reversed_on, returned.received_on) == (
        "ACH INV-000065",
        dt.date(2026, 11, 15),
        dt.date(2026, 11, 12),
    )
    reopened = Invoice.objects.get(number="INV-000065")
    assert (reopened.status, reopened.open_amount) == (Invoice.Status.FINALIZED, returned.amount)
    # Fernhill's first invoice, 93.51, written off 45 days after its due date.
    (write_off,) = WriteOff.objects.all()
    assert (write_off.invoice.number, write_off.amount, write_off.created_by.username) == (
        "INV-000026",
        Decimal("93.51"),
        "finance",
    )
    assert write_off.written_off_on == write_off.invoice.due_date + dt.timedelta(days=45)

    # The portal login sees Northwind, which has paid and open invoices.
    membership = PortalMembership.objects.get(user__username="customer")
    assert membership.customer.external_id == "cust_northwind"
    statuses = set(membership.customer.invoices.values_list("status", flat=True))
    assert statuses == {Invoice.Status.PAID, Invoice.Status.FINALIZED}

    # The ledger audits clean: every stored figure agrees with its documents, everything posted.
    audit = StringIO()
    call_command("audit_ledger", "--strict", stdout=audit)
    assert audit.getvalue() == "Ledger audit: clean (0 difference(s)).\n"

    # A second run changes nothing.
    second_output = seed()
    assert counts() == first
    assert "no changes" in second_output
    assert "q2c_" not in second_output and "exists" in second_output
