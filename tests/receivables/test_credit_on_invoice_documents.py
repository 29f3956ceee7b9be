"""An over-payment left on account is taken by the customer's next invoice at finalization: its
PDF and its portal page show, under the total, the credit balance applied and the amount due;
the portal's badge is the derived payment state."""

import subprocess
from decimal import Decimal

import time_machine

from invoicing.models import Invoice
from invoicing.pdf import invoice_html, invoice_pdf
from invoicing.services import billing_run
from receivables.services import invoice_write_off, payment_record
from tests.factories import CustomerFactory, PortalMembershipFactory, day, hybrid_plan, subscribe


def squeezed(html: str) -> str:
    return " ".join(html.split())


def over_paid_then_billed_again(client):
    """January's 625.00 invoice paid with 700.00 (75.00 on account); February's 625.00 invoice
    takes the 75.00 when it is finalized."""
    acme = CustomerFactory(external_id="acme")
    subscribe(customer=acme, plan=hybrid_plan())
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    january = Invoice.objects.get()
    with time_machine.travel("2026-01-20 12:00Z", tick=False):
        payment_record(
            customer=acme,
            amount=Decimal("700.00"),
            currency="USD",
            received_on=day("2026-01-20"),
            allocations={january: Decimal("625.00")},
        )
    with time_machine.travel("2026-02-15 01:00Z", tick=False):
        billing_run()
    february = Invoice.objects.get(billing_date="2026-02-15")
    client.force_login(PortalMembershipFactory(customer=acme).user)
    return january, february


def test_the_pdf_shows_the_credit_balance_applied_and_the_amount_due(client, db):
    # Given February's 625.00 invoice, which took the 75.00 on account at finalization
    january, february = over_paid_then_billed_again(client)
    assert (february.total, february.paid_amount, february.open_amount) == (
        Decimal("625.0000"),
        Decimal("75.0000"),
        Decimal("550.0000"),
    )

    # When its PDF is rendered
    html = squeezed(invoice_html(february))
    pdf = invoice_pdf(february)

    # Then under the total: the credit balance applied, −75.00, and 550.00 due
    assert '<td>Total</td><td class="num">$625.00</td>' in html
    assert '<td>Credit balance applied</td><td class="num">-$75.00</td>' in html
    assert '<td>Amount due</td><td class="num">$550.00</td>' in html
    text = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    assert "Credit balance applied" in text and "-$75.00" in text and "$550.00" in text
    # January's PDF, which took no credit, has neither line
    assert "Credit balance applied" not in invoice_html(january)
    assert "Amount due" not in invoice_html(january)


@time_machine.travel("2026-02-20 12:00Z", tick=False)
def test_the_portal_shows_the_credit_applied_the_amount_due_and_the_state(client, db):
    # Given February's invoice (due Mar 17) with 75.00 of credit applied
    january, february = over_paid_then_billed_again(client)

    # When the customer opens it, and the list
    page = squeezed(client.get(f"/portal/invoices/{february.number}/").content.decode())
    listed = squeezed(client.get("/portal/invoices/").content.decode())

    # Then: total 625.00, credit balance applied −75.00, amount due 550.00, partially paid
    assert 'data-label="Credit balance applied">-$75.00</td>' in page
    assert 'data-label="Amount due"><strong>$550.00</strong>' in page
    assert '<span class="badge partially-paid">Partially paid</span>' in page
    assert "Payments received" not in page  # the credit is not a payment
    assert '<span class="badge paid">Paid</span>' in listed  # January


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_the_portal_says_overdue_then_written_off(client, db):
    # Given February's invoice, 550.00 open three days past its due date (Mar 17)
    january, february = over_paid_then_billed_again(client)
    url = f"/portal/invoices/{february.number}/"
    assert '<span class="badge overdue">Overdue</span>' in squeezed(
        client.get(url).content.decode()
    )

    # When finance writes the 550.00 off
    invoice_write_off(invoice=february, reason="Customer insolvent")

    # Then the page reads written off: 625.00 − 75.00 credit − 550.00 written off = 0.00 due
    page = squeezed(client.get(url).content.decode())
    assert '<span class="badge written-off">Written off</span>' in page
    assert 'data-label="Written off">-$550.00</td>' in page
    assert 'data-label="Amount due"><strong>$0.00</strong>' in page
