"""Invoice documents leave billing's transaction: the email and the PDF are tasks sent once it
commits (invoicing.documents.invoices_issued), each idempotent: an invoice is emailed once, its PDF
rendered once per version of what it shows."""

import threading
from decimal import Decimal

import pytest
import time_machine
import weasyprint
from django.db import connection, transaction
from django.urls import reverse

from invoicing.documents import Emailed, email_invoice_once, invoice_pdf_stored
from invoicing.models import Invoice, InvoicePDF
from invoicing.services import billing_run
from invoicing.tasks import email_invoices, render_invoice_pdfs
from receivables.services import payment_record
from tests.factories import CustomerFactory, PortalMembershipFactory, day, hybrid_plan, subscribe

D = Decimal


class Boom(Exception):
    pass


@pytest.fixture
def renders(monkeypatch) -> list[int]:
    """A spy on WeasyPrint: every PDF really rendered appends to the list (and still renders)."""
    made: list[int] = []
    write_pdf = weasyprint.HTML.write_pdf

    def spy(self, *args, **kwargs):
        made.append(1)
        return write_pdf(self, *args, **kwargs)

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", spy)
    return made


def run(task, invoice_ids: list[int]):
    """Run a task as a worker would (here, in process): what it returns."""
    return task.apply((invoice_ids,)).result


def bill(on: str = "2026-01-15") -> list[Invoice]:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        return billing_run().invoices


def acme_subscription():
    customer = CustomerFactory(name="Acme", billing_email="ap@acme.example")
    return subscribe(customer=customer, plan=hybrid_plan(), start="2026-01-15")


def test_the_invoice_is_emailed_and_its_pdf_rendered_once_billing_commits(
    db, django_capture_on_commit_callbacks, mailoutbox, renders
):
    acme_subscription()

    # When billing runs: nothing leaves before the transaction commits
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        (invoice,) = bill()
    assert mailoutbox == [] and renders == [] and not InvoicePDF.objects.exists()
    assert len(callbacks) == 1  # one callback sends both tasks

    # Then, once it commits: one email, one PDF rendered and stored, the invoice marked emailed
    callbacks[0]()
    assert [(m.to, m.subject.split(" from ")[0]) for m in mailoutbox] == [
        (["ap@acme.example"], f"Invoice {invoice.number}")
    ]
    assert "for $625.00 is due on Feb 14, 2026" in mailoutbox[0].body
    invoice.refresh_from_db()
    assert invoice.emailed_at is not None
    assert len(renders) == 1
    assert bytes(InvoicePDF.objects.get(invoice=invoice).content).startswith(b"%PDF")


def test_nothing_is_sent_when_billing_rolls_back(
    db, django_capture_on_commit_callbacks, mailoutbox, renders
):
    acme_subscription()

    # When the transaction that billed rolls back
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        bill()
        raise Boom

    # Then no task was sent: no email, no PDF
    assert callbacks == [] and mailoutbox == [] and renders == []
    assert not Invoice.objects.exists() and not InvoicePDF.objects.exists()


def test_the_email_task_run_again_sends_nothing_twice(
    db, django_capture_on_commit_callbacks, mailoutbox
):
    acme_subscription()
    with django_capture_on_commit_callbacks(execute=True):
        (invoice,) = bill()
    assert len(mailoutbox) == 1

    # When the task is delivered again (a retry, a redelivery after a worker died)
    assert run(email_invoices, [invoice.pk]) == 0
    assert run(email_invoices, [invoice.pk, invoice.pk]) == 0

    # Then the customer still has one email
    assert len(mailoutbox) == 1


def test_a_customer_without_billing_email_is_not_emailed_and_stays_unemailed(
    db, django_capture_on_commit_callbacks, mailoutbox
):
    customer = CustomerFactory(billing_email="")
    subscribe(customer=customer, plan=hybrid_plan(), start="2026-01-15")
    with django_capture_on_commit_callbacks(execute=True):
        (invoice,) = bill()
    assert mailoutbox == []
    invoice.refresh_from_db()
    assert invoice.emailed_at is None

    # Once finance sets the address, running the task again sends it (once)
    customer.billing_email = "ap@late.example"
    customer.save()
    assert run(email_invoices, [invoice.pk]) == 1
    assert run(email_invoices, [invoice.pk]) == 0
    assert [m.to for m in mailoutbox] == [["ap@late.example"]]


@pytest.mark.django_db(transaction=True)
def test_an_invoice_whose_row_another_transaction_holds_is_skipped_then_sent_once(mailoutbox):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE SKIP LOCKED) are tested on PostgreSQL")
    acme_subscription()
    (invoice,) = bill()  # committed: its email went out on commit
    assert len(mailoutbox) == 1
    Invoice.objects.filter(pk=invoice.pk).update(emailed_at=None)  # as if it had not yet
    mailoutbox.clear()
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:  # another worker sending it, or a payment being applied
        try:
            with transaction.atomic():
                Invoice.objects.select_for_update().get(pk=invoice.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        # When the email task meets the locked row: it does not wait, and does not send
        assert email_invoice_once(invoice.pk) == Emailed.BUSY
        assert run(email_invoices, [invoice.pk]) == 0
        assert mailoutbox == []
    finally:
        release.set()
        holder.join(timeout=30)

    # Then once the row is free it is sent, once
    assert run(email_invoices, [invoice.pk]) == 1
    assert run(email_invoices, [invoice.pk]) == 0
    assert len(mailoutbox) == 1


def test_the_pdf_is_rendered_once_per_version_of_the_invoice(
    db, django_capture_on_commit_callbacks, renders
):
    subscription = acme_subscription()
    with django_capture_on_commit_callbacks(execute=True):
        (invoice,) = bill()
    assert len(renders) == 1
    stored = InvoicePDF.objects.get(invoice=invoice)

    # When the PDF is asked for again, and the task runs again: nothing is rendered
    assert invoice_pdf_stored(invoice) == bytes(stored.content)
    assert run(render_invoice_pdfs, [invoice.pk]) == 1
    assert len(renders) == 1

    # When the invoice is paid (the PDF says PAID): a new version, rendered once
    payment_record(
        customer=subscription.customer,
        amount=invoice.total,
        currency="USD",
        received_on=day("2026-01-20"),
    )
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    paid_pdf = invoice_pdf_stored(invoice)
    assert len(renders) == 2
    assert invoice_pdf_stored(invoice) == paid_pdf
    run(render_invoice_pdfs, [invoice.pk])
    assert len(renders) == 2
    restored = InvoicePDF.objects.get(invoice=invoice)
    assert restored.version != stored.version and bytes(restored.content) == paid_pdf
    assert InvoicePDF.objects.count() == 1


def test_the_downloads_serve_the_stored_pdf(
    db, client, admin_client, django_capture_on_commit_callbacks, renders
):
    subscription = acme_subscription()
    with django_capture_on_commit_callbacks(execute=True):
        (invoice,) = bill()
    stored = bytes(InvoicePDF.objects.get(invoice=invoice).content)
    renders.clear()

    # The admin's download
    response = admin_client.get(reverse("admin:invoicing_invoice_pdf", args=[invoice.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content == stored

    # The customer's, in the portal
    client.force_login(PortalMembershipFactory(customer=subscription.customer).user)
    response = client.get(reverse("portal:invoice_pdf", args=[invoice.number]))
    assert response.status_code == 200 and response.content == stored

    # Neither rendered anything
    assert renders == []
