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
from revrec.models import AccountingPeriod, RecognitionLine, RevenueContract
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
        "credit_notes": sorted(CreditNote.objects.values_list("number", flat=True)),
        "contracts": RevenueContract.objects.count(),
        "recognized": RecognitionLine.objects.exclude(entry=None).count(),
        "closed": sorted(
            AccountingPeriod.objects.filter(status="closed").values_list("start", flat=True)
        ),
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

    assert first["customers"] == 26 and first["eur_customers"] == 2
    assert first["charges"] == 17  # 3 plans × 4 prices, Growth's 4 in EUR, 1 later version
    assert first["subscriptions"] == 23 and first["prepaid_credits"] == 2
    # 23 new-business quotes, 2 amendments and Halcyon's renewal accepted; the renewal job's
    # drafts for Cobalt, Wren and Saltmarsh (their terms end within 60 days) besides the 4
    # drafts of sales; with today's three deals: one in review (a rule applies), one sent, one
    # draft
    assert first["quotes"] == {
        "accepted": 26,
        "declined": 2,
        "expired": 2,
        "sent": 3,
        "draft": 7,
        "in_review": 1,
    }
    # (Brightpath's returned ACH debit reopened one; Fernhill's written-off invoice counts as
    # paid: nothing is left open on it)
    assert first["invoices"] == {"paid": 90, "finalized": 24}
    assert first["invoice_numbers"] == [f"INV-{n:06d}" for n in range(1, 115)]
    assert first["eur_invoices"] == 8
    # (Meridian, cancelled 25 days ago, is not billed its next month's fees; Kestrel's seat
    # change, Cobalt's upgrade and Halcyon's extra seats are prorated: 2 + 4 + 2 lines.)
    assert first["lines"] == {
        "fee": 224,
        "usage": 182,
        "true_up": 18,
        "credit": 3,
        "proration": 8,
    }
    # 92 payments, each applied to its invoice; and Solace's and Meridian's over-payments put
    # on account, Brightpath's returned debit taken back
    assert first["events"] > 0 and (first["payments"], first["allocations"]) == (92, 95)
    # finance's three credit notes, and Meridian's cancellation (the last)
    assert first["credit_notes"] == [f"CN-{n:06d}" for n in range(1, 5)]
    # a revenue contract per subscription, and Halcyon's renewal: a new contract for its second
    # year (from Nov 27, 2026)
    assert first["contracts"] == 24 and first["recognized"] > 0
    renewal = RevenueContract.objects.exclude(renewal=None).get()
    assert (renewal.subscription.customer.name, renewal.start) == (
        "Halcyon Freight Systems",
        renewal.renewal.effective_date,
    )
    # A year of books: November 2025 (Halcyon's first invoice) to September 2026 closed, in
    # order; October (last month) is left open for finance's month-end close.
    assert first["closed"] == [dt.date(2025, m, 1) for m in (11, 12)] + [
        dt.date(2026, m, 1) for m in range(1, 10)
    ]
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
    unused, remaining = InvoiceLine.objects.filter(
        kind="proration", invoice__subscription=kestrel
    ).order_by("amount")
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
    today = dt.date(2026, 11, 28)
    for sub in Subscription.objects.exclude(plan__code="starter"):
        # (the latest version: Cobalt's upgrade and Halcyon's renewal made new ones)
        tokens = sub.items.filter(name="Tokens").latest("id").pricing
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
    assert prorated.count() == 12  # platform fee and seats of the 6 Starter subscriptions
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
    late = [i for i in Invoice.objects.filter(status="finalized") if i.due_date < today]
    assert (len(late), sum(i.open_amount for i in late)) == (7, Decimal("3643.35"))
    # Solace's first payment of the last 55 days was rounded up to the next hundred: the 43.29
    # over went on account and its next invoice took it at finalization.
    solace = Customer.objects.get(external_id="cust_solace")
    entries = solace.credit_balance_entries.order_by("effective_on", "id")
    assert [(e.kind, e.amount, e.invoice and e.invoice.number) for e in entries] == [
        ("payment", Decimal("43.29"), None),
        ("applied", Decimal("-43.29"), "INV-000099"),
    ]
    assert Invoice.objects.get(number="INV-000099").status == Invoice.Status.PAID
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
        "ACH INV-000100",
        dt.date(2026, 11, 15),
        dt.date(2026, 11, 12),
    )
    reopened = Invoice.objects.get(number="INV-000100")
    assert (reopened.status, reopened.open_amount) == (Invoice.Status.FINALIZED, returned.amount)
    # Fernhill's first invoice, 93.51, written off 45 days after its due date.
    (write_off,) = WriteOff.objects.all()
    assert (write_off.invoice.number, write_off.amount, write_off.created_by.username) == (
        "INV-000055",
        Decimal("93.51"),
        "finance",
    )
    assert write_off.written_off_on == write_off.invoice.due_date + dt.timedelta(days=45)

    # The first customers, a year ago. Halcyon: Enterprise billed yearly up front from Nov 25,
    # 2025 (platform fee 2,300 × 12, 30 seats × 40 × 12); 45 seats from May 22 (the 187 days
    # left of the 365-day year invoiced at once: −14,400 × 187/365 and +21,600 × 187/365);
    # renewed on Nov 8 for a second year, billed on Nov 25 (45 seats now).
    halcyon = Subscription.objects.get(external_id="sub_halcyon_enterprise")
    assert (halcyon.start_date, halcyon.billing_interval_months) == (dt.date(2025, 11, 25), 12)
    yearly, seats_added, second_year = halcyon.invoices.order_by("billing_date")
    assert yearly.billing_date == dt.date(2025, 11, 25) and yearly.total == Decimal("42000")
    fees = {line.description: line.amount for line in yearly.lines.all()}
    assert fees == {"Platform fee": Decimal("27600"), "Seats": Decimal("14400")}
    assert seats_added.billing_date == dt.date(2026, 5, 22)
    assert sorted(line.amount for line in seats_added.lines.all()) == [
        Decimal("-7377.53"),
        Decimal("11066.30"),
    ]
    amendment, renewal_change = halcyon.changes.order_by("effective_date")
    assert amendment.description == "Seats: 30 → 45 seats"
    halcyon_end = dt.date(2026, 11, 25)
    assert (renewal_change.kind, renewal_change.effective_date) == ("renewal", halcyon_end)
    assert halcyon.end_date == dt.date(2027, 11, 25)
    renewed = Quote.objects.get(kind="renewal", contract=halcyon)
    assert renewed.status == Quote.Status.ACCEPTED and renewed.start_date == halcyon_end
    assert second_year.billing_date == halcyon_end
    fees = {line.description: line.amount for line in second_year.lines.filter(kind="fee")}
    assert fees == {"Platform fee": Decimal("27600"), "Seats": Decimal("21600")}
    assert second_year.lines.filter(kind="usage").exists()  # the first year's, in arrears
    # Cobalt moved from Growth to Enterprise (25 seats) on Jun 21, 20 days into its 30-day
    # period from Jun 11: its next invoice credits 20/30 of Growth's fees and charges 20/30 of
    # Enterprise's.
    cobalt = Subscription.objects.get(external_id="sub_cobalt_growth")
    assert cobalt.plan.code == "enterprise"
    assert Quote.objects.get(kind="amendment", contract=cobalt).status == Quote.Status.ACCEPTED
    prorated = InvoiceLine.objects.filter(kind="proration", invoice__subscription=cobalt)
    assert sorted(prorated.values_list("amount", flat=True)) == [
        Decimal("-332.67"),  # 499 × 20/30
        Decimal("-166.67"),  # 10 seats × 25 × 20/30
        Decimal("666.67"),  # 25 seats × 40 × 20/30
        Decimal("1666.67"),  # 2,500 × 20/30
    ]
    # The renewal job drafted the renewals of the terms that end within 60 days.
    drafted = Quote.objects.filter(kind="renewal", status=Quote.Status.DRAFT)
    assert {q.contract.external_id for q in drafted} == {
        "sub_cobalt_growth",
        "sub_wren_starter",
        "sub_saltmarsh_growth",
    }
    # Finance's credit notes, on paid invoices: the credit goes to the customer's balance.
    notes = {n.invoice.subscription.external_id: n for n in CreditNote.objects.filter(change=None)}
    wren, saltmarsh, sla = (
        notes["sub_wren_starter"],
        notes["sub_saltmarsh_growth"],
        notes["sub_halcyon_enterprise"],
    )
    assert (wren.kind, wren.total, wren.issued_by.username) == (
        "lines",
        Decimal("49.50"),
        "finance",
    )
    assert wren.lines.get().invoice_line.amount == 99  # half of the month's platform fee
    tokens = saltmarsh.lines.get().invoice_line
    assert tokens.description == "Tokens"
    assert saltmarsh.subtotal == (tokens.amount * Decimal("0.2")).quantize(Decimal("0.01"))
    assert saltmarsh.tax_amount == (saltmarsh.subtotal * Decimal("0.06")).quantize(Decimal("0.01"))
    assert (sla.kind, sla.total, sla.invoice) == ("amount", Decimal("230"), yearly)
    for note in (wren, saltmarsh, sla):
        note.invoice.refresh_from_db()
        assert note.invoice.status == Invoice.Status.PAID
        assert note.invoice.credit_to_balance == note.total

    # The closed months: closed by finance on the 5th of the next month, each after its cash
    # review, with every recognition line of the month posted.
    for period in AccountingPeriod.objects.filter(status="closed"):
        assert period.closed_by.username == "finance" and period.cash_reviewed_at is not None
        assert period.closed_at.date() == period.end + dt.timedelta(days=4)
    assert not RecognitionLine.objects.filter(entry=None, month__lt=dt.date(2026, 10, 1)).exclude(
        amount=0
    )
    assert AccountingPeriod.objects.get(start=dt.date(2026, 10, 1)).status == "open"

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
