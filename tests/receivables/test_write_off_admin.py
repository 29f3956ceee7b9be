"""Finance writes off what is left of an invoice from its admin page: the amount defaults to all
that is open, a reason is required, a refused figure is said on its field and nothing is
written; Sales may not. The invoice page shows paid, written off, open and the derived payment
state; the invoice list filters by that state."""

from decimal import Decimal

import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse

from invoicing.models import Invoice
from invoicing.services import billing_run
from receivables.models import WriteOff
from receivables.services import payment_record
from tests.factories import CustomerFactory, UserFactory, day, hybrid_plan, subscribe


def short_paid_invoice(client, group="Finance"):
    """A 625.00 invoice (due Feb 14) of which the customer paid 600.00; today is Mar 20."""
    customer = CustomerFactory()
    subscribe(customer=customer, plan=hybrid_plan())
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    invoice = Invoice.objects.get()
    with time_machine.travel("2026-02-10 12:00Z", tick=False):
        payment_record(
            customer=customer,
            amount=Decimal("600.00"),
            currency="USD",
            received_on=day("2026-02-10"),
            reference="ACH 0042",
        )
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    invoice.refresh_from_db()
    return invoice


def text(answer) -> str:
    return " ".join(answer.content.decode().split())


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_the_write_off_page_offers_all_that_is_open(client, db):
    # Given a 625.00 invoice with 600.00 paid, 34 days past due
    invoice = short_paid_invoice(client)

    # When finance opens the invoice and its write-off page
    change = text(client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])))
    page = client.get(reverse("admin:invoicing_invoice_write_off", args=[invoice.pk]))

    # Then the invoice shows paid 600.00, nothing written off, 25.00 open, overdue, a Write off
    # button and the payment; the page offers the 25.00
    assert "$600.00" in change and "$25.00" in change and ">overdue<" in change
    assert "Write off" in change and "ACH 0042" in change
    assert page.status_code == 200
    assert page.context["form"].initial["amount"] == Decimal("25.00")
    assert 'value="25.00"' in text(page)


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_finance_writes_off_the_rest_of_an_invoice(client, db):
    # Given the short-paid invoice
    invoice = short_paid_invoice(client)
    url = reverse("admin:invoicing_invoice_write_off", args=[invoice.pk])

    # When finance writes off the 25.00 open with a reason
    answer = client.post(
        url, {"amount": "25.00", "on": "2026-03-20", "reason": "Bank fees deducted by the payer"}
    )

    # Then the invoice has nothing open and reads written off; the write-off is listed on it
    assert answer.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.status, invoice.written_off_amount, invoice.open_amount) == (
        Invoice.Status.PAID,
        Decimal("25.00"),
        Decimal("0.00"),
    )
    (write_off,) = WriteOff.objects.all()
    assert (write_off.amount, write_off.written_off_on, write_off.created_by.username) == (
        Decimal("25.00"),
        day("2026-03-20"),
        "fin",
    )
    change = text(client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])))
    assert ">written off<" in change and "Bank fees deducted by the payer" in change
    assert "Write-off" in change
    assert client.get(url).status_code == 200  # the page still shows; the button is gone
    assert f'href="/admin/invoicing/invoice/{invoice.pk}/write-off/"' not in change


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_a_reason_is_required_and_nothing_is_written(client, db):
    invoice = short_paid_invoice(client)
    url = reverse("admin:invoicing_invoice_write_off", args=[invoice.pk])

    answer = client.post(url, {"amount": "25.00", "on": "2026-03-20", "reason": "  "})

    assert answer.status_code == 200
    assert answer.context["form"].errors == {"reason": ["This field is required."]}
    assert not WriteOff.objects.exists()
    invoice.refresh_from_db()
    assert (invoice.written_off_amount, invoice.open_amount) == (Decimal(0), Decimal("25.00"))


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_more_than_is_open_is_refused_on_the_amount(client, db):
    invoice = short_paid_invoice(client)
    url = reverse("admin:invoicing_invoice_write_off", args=[invoice.pk])

    answer = client.post(url, {"amount": "25.01", "on": "2026-03-20", "reason": "Uncollectible"})

    assert answer.status_code == 200
    assert answer.context["form"].errors == {
        "amount": [f"Invoice {invoice} has $25.00 open: $25.01 is more."]
    }
    assert not WriteOff.objects.exists()
    invoice.refresh_from_db()
    assert invoice.open_amount == Decimal("25.00")


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_sales_may_not_write_off(client, db):
    invoice = short_paid_invoice(client, group="Sales")
    url = reverse("admin:invoicing_invoice_write_off", args=[invoice.pk])

    shown = client.get(url)
    posted = client.post(url, {"amount": "25.00", "on": "2026-03-20", "reason": "Uncollectible"})

    assert (shown.status_code, posted.status_code) == (403, 403)
    assert not WriteOff.objects.exists()
    change = text(client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])))
    assert "write-off/" not in change


@time_machine.travel("2026-03-20 12:00Z", tick=False)
def test_the_invoice_list_filters_by_payment_state(client, db):
    # Given the short-paid invoice, overdue
    invoice = short_paid_invoice(client)
    changelist = reverse("admin:invoicing_invoice_changelist")

    def listed(state):
        return list(client.get(f"{changelist}?payment={state}").context["cl"].result_list)

    # Then it is overdue (the Overdue filter), not open; written off once written off
    assert listed("overdue") == [invoice] and listed("open") == listed("written_off") == []
    assert ">overdue<" in text(client.get(changelist))
    client.post(
        reverse("admin:invoicing_invoice_write_off", args=[invoice.pk]),
        {"amount": "25.00", "on": "2026-03-20", "reason": "Uncollectible"},
    )
    assert listed("written_off") == [invoice] and listed("overdue") == listed("paid") == []
