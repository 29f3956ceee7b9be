"""The portal's invoice page lists its credit notes with their PDFs, for its customer only."""

from decimal import Decimal

import time_machine

from invoicing.corrections import credit_note_issue
from invoicing.models import Invoice
from invoicing.services import billing_run
from tests.factories import CustomerFactory, PortalMembershipFactory, hybrid_plan, subscribe


def test_the_invoice_page_lists_its_credit_notes_and_their_pdf_is_the_customers_only(client, db):
    acme = CustomerFactory(external_id="acme")
    subscribe(customer=acme, plan=hybrid_plan())
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    invoice = Invoice.objects.get()
    note = credit_note_issue(invoice=invoice, amount=Decimal("25.00"), reason="Outage on Jan 17")
    client.force_login(PortalMembershipFactory(customer=acme).user)

    page = client.get(f"/portal/invoices/{invoice.number}/").content.decode()
    pdf = client.get(f"/portal/credit-notes/{note.number}/pdf/")

    assert "CN-000001" in page and "Outage on Jan 17" in page and "$25.00" in page
    assert "$600.00" in page  # amount due: 625.00 − 25.00
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    client.force_login(PortalMembershipFactory(customer=CustomerFactory(external_id="other")).user)
    assert client.get(f"/portal/credit-notes/{note.number}/pdf/").status_code == 404
