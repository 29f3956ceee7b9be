"""The thin path, quote to cash, every step through the real services and endpoints."""

from decimal import Decimal

import time_machine
from django.urls import reverse

from invoicing.models import Invoice
from invoicing.services import billing_run
from quotes.models import Quote
from quotes.services import quote_accept, quote_mark_sent, quote_populate_lines, quote_submit
from receivables.services import payment_record
from revrec.models import RecognitionLine, RevenueContract
from revrec.services import revrec_sync
from tests.factories import CustomerFactory, PortalMembershipFactory, day, hybrid_plan


@time_machine.travel("2026-01-10 09:00Z", tick=False)
def test_quote_to_cash(db, api, client):
    # Given a hybrid plan and a customer with 8.25 % tax
    plan = hybrid_plan()
    customer = CustomerFactory(external_id="acme", tax_rate=Decimal("8.25"))
    quote = Quote.objects.create(
        customer=customer,
        plan=plan,
        start_date=day("2026-01-15"),
        term_months=3,
        valid_until=day("2026-01-31"),
        subscription_external_id="sub_acme",
    )
    quote_populate_lines(quote=quote)
    seats = quote.lines.get(description="Seats")
    seats.quantity, seats.unit_price = Decimal("12"), Decimal("22.50")  # negotiated
    seats.save()

    # When the rep submits it (no approval rule applies: approved), sends it and the customer
    # accepts
    quote_mark_sent(quote=quote_submit(quote=quote))
    quote = quote_accept(quote=quote)
    subscription = quote.subscription
    assert subscription.external_id == "sub_acme"
    assert [p.start_date for p in subscription.billing_periods.all()] == [
        day("2026-01-15"),
        day("2026-02-15"),
        day("2026-03-15"),
    ]
    assert subscription.billing_periods.first().advance_amount == Decimal(
        "770.00"
    )  # 500 + 12×22.50

    # The first billing date invoices the first period's fees in advance
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        first = billing_run().invoices
    assert [(i.number, i.subtotal, i.tax_amount, i.total) for i in first] == [
        ("INV-000001", Decimal("770.00"), Decimal("63.53"), Decimal("833.53"))
    ]

    # Usage arrives through the Lago-format API, with one replayed event
    events = [
        {
            "transaction_id": f"t{n}",
            "external_subscription_id": "sub_acme",
            "code": "api_calls",
            "timestamp": f"2026-02-0{1 + n % 9}T12:00:00Z",
        }
        for n in range(1, 1501)
    ]
    with time_machine.travel("2026-02-14 12:00Z", tick=False):
        answer = api.post("/api/v1/events/batch", {"events": events}, format="json")
        assert answer.status_code == 200, answer.content
        replay = api.post("/api/v1/events", {"event": events[0]}, format="json")
    assert answer.json() == {"received": 1500, "created": 1500, "duplicates": 0}
    assert replay.status_code == 200 and replay.json()["duplicates"] == 1

    # The second billing date bills 1,500 calls × 0.002 in arrears and the next period in advance
    with time_machine.travel("2026-02-15 01:00Z", tick=False):
        (second,) = billing_run().invoices
    lines = [(line.description, line.quantity, line.amount) for line in second.lines.all()]
    assert lines == [
        ("API calls", Decimal("1500"), Decimal("3.00")),
        ("Platform fee", Decimal("1"), Decimal("500.00")),
        ("Seats", Decimal("12"), Decimal("270.00")),
    ]
    assert (second.number, second.subtotal, second.tax_amount, second.total) == (
        "INV-000002",
        Decimal("773.00"),
        Decimal("63.77"),
        Decimal("836.77"),
    )
    assert second.status == Invoice.Status.FINALIZED

    # A second run the same day bills nothing again
    with time_machine.travel("2026-02-15 02:00Z", tick=False):
        assert billing_run().invoices == []

    # Payment makes the invoice paid
    with time_machine.travel("2026-02-20 15:00Z", tick=False):  # not received in the future
        payment_record(
            customer=customer,
            amount=Decimal("836.77"),
            currency="USD",
            received_on=day("2026-02-20"),
            allocations={second: Decimal("836.77")},
        )
    second.refresh_from_db()
    assert second.status == Invoice.Status.PAID

    # Revenue: the 3-month fees (3 × 770.00 = 2,310.00) allocated by list price as SSP
    # (platform 3 × 500.00 = 1,500.00, seats 3 × 12 × 25.00 = 900.00): 2310 × 1500/2400 =
    # 1,443.75 and 2310 × 900/2400 = 866.25, each spread over the term's 90 days (Jan 15 – 31:
    # 17, Feb 28, Mar 31, Apr 1 – 14: 14), the cents left to the largest remainders
    revrec_sync(today=day("2026-02-28"))
    contract = RevenueContract.objects.get(subscription=subscription)
    platform, seat_fees, calls = contract.obligations.order_by("position")
    assert (platform.allocated_amount, seat_fees.allocated_amount) == (
        Decimal("1443.75"),
        Decimal("866.25"),
    )
    assert [line.amount for line in platform.lines.order_by("month")] == [
        Decimal("272.71"),  # 1443.75 × 17/90 = 272.708…
        Decimal("449.17"),  # × 28/90 = 449.166…
        Decimal("497.29"),  # × 31/90 = 497.291…
        Decimal("224.58"),  # × 14/90 = 224.583…
    ]
    assert [line.amount for line in seat_fees.lines.order_by("month")] == [
        Decimal("163.63"),  # 866.25 × 17/90 = 163.625 (a tie with March: the earlier wins)
        Decimal("269.50"),
        Decimal("298.37"),
        Decimal("134.75"),
    ]
    # The job on Feb 28 recognized January, the last month that is over: 436.34 posted
    january = RecognitionLine.objects.filter(obligation__in=[platform, seat_fees]).exclude(
        entry=None
    )
    assert sorted(line.amount for line in january) == [Decimal("163.63"), Decimal("272.71")]

    # The portal shows the customer their invoices, and refuses another customer's
    member = PortalMembershipFactory(customer=customer)
    other = PortalMembershipFactory()
    client.force_login(member.user)
    page = client.get(reverse("portal:invoices"))
    assert page.status_code == 200
    assert b"INV-000001" in page.content and b"INV-000002" in page.content
    pdf = client.get(reverse("portal:invoice_pdf", args=["INV-000002"]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    client.force_login(other.user)
    assert client.get(reverse("portal:invoice", args=["INV-000002"])).status_code == 404
    assert client.get(reverse("portal:invoice_pdf", args=["INV-000002"])).status_code == 404
