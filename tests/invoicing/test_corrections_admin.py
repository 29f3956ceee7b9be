"""Finance issues a credit note and voids an invoice from the invoice's admin page; an error is
shown on the form and changes nothing."""

from decimal import Decimal

import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse

from invoicing.models import CreditNote, Invoice
from invoicing.services import billing_run
from tests.factories import CustomerFactory, UserFactory, hybrid_plan, subscribe


def finance_and_invoice(client):
    subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return Invoice.objects.get()


def test_finance_issues_a_credit_note_by_line_from_the_invoice_page(client, db):
    invoice = finance_and_invoice(client)
    url = reverse("admin:invoicing_invoice_credit_note", args=[invoice.pk])
    seats = invoice.lines.get(description__startswith="Seats")

    too_much = client.post(url, {"mode": "lines", f"line_{seats.pk}": "125.01"})
    done = client.post(url, {"mode": "lines", f"line_{seats.pk}": "40.00"})

    assert "“Seats” has $125.00 left to credit: $125.01 is more." in too_much.content.decode()
    assert done.status_code == 302
    note = CreditNote.objects.get()
    assert (note.number, note.total, note.issued_by.username) == (
        "CN-000001",
        Decimal("40.00"),
        "fin",
    )
    page = client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content
    assert b"CN-000001" in page and b"Issue a credit note" in page


def test_finance_voids_an_open_invoice_with_a_reason(client, db):
    invoice = finance_and_invoice(client)
    url = reverse("admin:invoicing_invoice_void", args=[invoice.pk])

    assert client.post(url, {"reason": ""}).status_code == 200  # the form asks for a reason
    answer = client.post(url, {"reason": "Wrong plan"})

    assert answer.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.status, invoice.void_reason) == (Invoice.Status.VOID, "Wrong plan")
    assert client.get(url).status_code == 403  # nothing left to void


def test_sales_may_not_issue_credit_notes(client, db):
    invoice = finance_and_invoice(client)
    sales = UserFactory(username="rep", is_staff=True)
    sales.groups.add(Group.objects.get(name="Sales"))
    client.force_login(sales)

    answer = client.get(reverse("admin:invoicing_invoice_credit_note", args=[invoice.pk]))

    assert answer.status_code == 403


def test_the_pages_buttons_say_what_they_do(client, db):
    invoice = finance_and_invoice(client)
    credit = client.get(reverse("admin:invoicing_invoice_credit_note", args=[invoice.pk]))
    void = client.get(reverse("admin:invoicing_invoice_void", args=[invoice.pk]))
    assert ">Issuethecreditnote<" in "".join(credit.content.decode().split())
    assert ">Voidtheinvoice<" in "".join(void.content.decode().split())
