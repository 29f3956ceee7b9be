"""Dunning: each step of the policy emailed once on its day, never twice, never after payment."""

import threading
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import ValidationError as FieldError
from django.db import connection
from django.urls import reverse

from customers.models import Customer
from invoicing.models import Invoice, InvoicePDF
from receivables.dunning import dunning_run
from receivables.dunning_defaults import ensure_default_policy
from receivables.models import DunningNotice, DunningPause, DunningPolicy, DunningStep
from receivables.selectors import invoice_state
from receivables.services import payment_record
from tests.factories import (
    CustomerFactory,
    PlanFactory,
    PortalMembershipFactory,
    UserFactory,
    day,
    subscribe,
)
from tests.receivables.test_payments import open_invoice

DUE = "2026-03-01"


@pytest.fixture(autouse=True)
def default_policy():
    """The migration seeds it; a transactional test's flush removes it: seed it again."""
    ensure_default_policy(DunningPolicy, DunningStep)


def due_march_1(customer=None, fee="100.00") -> Invoice:
    """An open invoice of 100.00, due on Mar 1, 2026."""
    invoice = open_invoice(customer, fee=fee)
    Invoice.objects.filter(pk=invoice.pk).update(due_date=day(DUE))
    invoice.refresh_from_db()
    mail.outbox.clear()  # the invoice's own email
    return invoice


def run(on: str) -> list[str]:
    """Run dunning on that day (each notice's email sent as its transaction commits); the step
    names sent."""
    sent = dunning_run(today=day(on)).sent
    return [notice.step.name for notice in sent]


def notices() -> list[tuple[str, str, Decimal]]:
    return [
        (n.step.name, n.sent_on.isoformat(), n.amount_due)
        for n in DunningNotice.objects.order_by("sent_on", "id")
    ]


@pytest.mark.django_db
def test_default_policy_steps():
    policy = DunningPolicy.objects.get(name="Default", active=True)
    assert [(s.days_from_due, s.name) for s in policy.steps.all()] == [
        (-3, "Friendly reminder"),
        (1, "Payment overdue"),
        (7, "Second notice"),
        (14, "Final notice"),
    ]


@pytest.mark.django_db(transaction=True)
def test_each_step_is_sent_once_on_its_day_and_not_before():
    invoice = due_march_1()
    assert invoice.number == "INV-000001"
    timeline = {
        on: run(on)
        for on in [
            "2026-02-25",
            "2026-02-26",
            "2026-02-27",
            "2026-03-01",
            "2026-03-02",
            "2026-03-03",
            "2026-03-07",
            "2026-03-08",
            "2026-03-14",
            "2026-03-15",
            "2026-03-16",
            "2026-04-30",
        ]
    }
    assert timeline == {
        "2026-02-25": [],
        "2026-02-26": ["Friendly reminder"],
        "2026-02-27": [],
        "2026-03-01": [],
        "2026-03-02": ["Payment overdue"],
        "2026-03-03": [],
        "2026-03-07": [],
        "2026-03-08": ["Second notice"],
        "2026-03-14": [],
        "2026-03-15": ["Final notice"],
        "2026-03-16": [],
        "2026-04-30": [],
    }
    assert notices() == [
        ("Friendly reminder", "2026-02-26", Decimal("100.00")),
        ("Payment overdue", "2026-03-02", Decimal("100.00")),
        ("Second notice", "2026-03-08", Decimal("100.00")),
        ("Final notice", "2026-03-15", Decimal("100.00")),
    ]
    assert [m.subject for m in mail.outbox] == [
        f"Invoice {invoice.number} is due on Mar 1, 2026",
        f"Invoice {invoice.number} is overdue",
        f"Second notice: invoice {invoice.number} is overdue",
        f"Final notice: invoice {invoice.number}",
    ]
    assert {tuple(m.to) for m in mail.outbox} == {(invoice.customer.billing_email,)}


@pytest.mark.django_db(transaction=True)
def test_a_doubled_run_sends_nothing_twice():
    due_march_1()
    assert run("2026-03-02") == ["Payment overdue"]
    assert run("2026-03-02") == []
    assert len(mail.outbox) == 1
    assert DunningNotice.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_backlog_sends_only_the_latest_due_step():
    # Given dunning did not run before Mar 9 (the reminder and the overdue notice were missed)
    due_march_1()
    # Then only the second notice goes out, and the missed ones never do
    assert run("2026-03-09") == ["Second notice"]
    assert run("2026-03-10") == []
    assert run("2026-03-15") == ["Final notice"]
    assert [n[0] for n in notices()] == ["Second notice", "Final notice"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_once():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions are tested on PostgreSQL")
    invoice = due_march_1()
    barrier = threading.Barrier(2)
    outcomes: list = []

    def dunn() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append([n.step.name for n in dunning_run(today=day("2026-03-02")).sent])
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=dunn) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == [[], ["Payment overdue"]]
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"Invoice {invoice.number} is overdue", [invoice.customer.billing_email])
    ]
    assert DunningNotice.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_dunning_stops_once_the_invoice_is_paid():
    invoice = due_march_1()
    customer = invoice.customer
    assert run("2026-03-02") == ["Payment overdue"]

    # A partial payment: the next notice asks for what is left
    payment_record(
        customer=customer, amount=Decimal("60.00"), currency="USD", received_on=day("2026-03-05")
    )
    assert run("2026-03-08") == ["Second notice"]
    assert "$40.00" in mail.outbox[-1].body

    # Paid in full: no final notice
    payment_record(
        customer=customer, amount=Decimal("40.00"), currency="USD", received_on=day("2026-03-10")
    )
    assert run("2026-03-15") == []
    assert notices() == [
        ("Payment overdue", "2026-03-02", Decimal("100.00")),
        ("Second notice", "2026-03-08", Decimal("40.00")),
    ]


@pytest.mark.django_db(transaction=True)
def test_dunning_stops_once_the_invoice_is_voided():
    from invoicing.corrections import invoice_void

    invoice = due_march_1()
    assert run("2026-02-26") == ["Friendly reminder"]
    invoice_void(invoice=invoice, reason="Billed by mistake")
    assert run("2026-03-02") == []
    assert DunningNotice.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_excluded_and_paused_customers_get_nothing_until_the_pause_ends():
    excluded = due_march_1()
    paused = due_march_1()
    DunningPause.objects.create(customer=excluded.customer, excluded=True)
    DunningPause.objects.create(customer=paused.customer, paused_until=day("2026-03-08"))

    assert run("2026-03-02") == []
    assert run("2026-03-07") == []
    # The pause ends on Mar 8: the step due that day goes out, to the paused customer only
    assert run("2026-03-08") == ["Second notice"]
    assert run("2026-03-15") == ["Final notice"]
    assert set(DunningNotice.objects.values_list("invoice_id", flat=True)) == {paused.pk}
    assert {m.to[0] for m in mail.outbox} == {paused.customer.billing_email}
    assert Customer.objects.count() == 2


@pytest.mark.django_db
def test_a_template_that_does_not_render_is_refused_at_save():
    policy = DunningPolicy.objects.get(name="Default")
    step = DunningStep(
        policy=policy,
        days_from_due=30,
        name="Collections",
        subject="Invoice {{ invoice.number|nosuchfilter }}",
        body="{% if amount_due %}Pay {{ amount_due }}",
    )
    with pytest.raises(FieldError) as caught:
        step.save()
    assert caught.value.message_dict == {
        "subject": ["This template does not render: Invalid filter: 'nosuchfilter'"],
        "body": [
            "This template does not render: Unclosed tag on line 1: 'if'. Looking for one of: "
            "elif, else, "
            "endif."
        ],
    }
    assert not DunningStep.objects.filter(days_from_due=30).exists()


@pytest.mark.django_db(transaction=True)
def test_the_email_has_the_pdf_and_the_amount_due():
    invoice = due_march_1(fee="1234.50")
    customer = invoice.customer
    assert run("2026-03-02") == ["Payment overdue"]
    (email,) = mail.outbox
    assert email.to == [customer.billing_email]
    assert email.body == (
        f"Hello {customer.name},\n\nInvoice {invoice.number} was due on Mar 1, 2026 and "
        "$1,234.50 is still unpaid. The invoice is attached, and in your billing portal: "
        f"/portal/invoices/{invoice.number}/\n\n"
        "If you have already paid, thank you, and please ignore this email.\n"
    )
    ((name, content, mimetype),) = email.attachments
    assert (name, mimetype) == (f"{invoice.number}.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    assert content == bytes(InvoicePDF.objects.get(invoice=invoice).content)  # the stored one
    notice = DunningNotice.objects.get()
    assert (notice.to, notice.amount_due) == (customer.billing_email, Decimal("1234.50"))


@pytest.mark.django_db
def test_invoice_state_follows_payments_and_the_due_date():
    invoice = due_march_1()
    assert invoice_state(invoice, day("2026-03-01")) == "open"
    assert invoice_state(invoice, day("2026-03-02")) == "overdue"
    payment_record(
        customer=invoice.customer,
        amount=Decimal("30.00"),
        currency="USD",
        received_on=day("2026-02-20"),
        allocations={invoice: Decimal("30.00")},
    )
    invoice.refresh_from_db()
    assert invoice_state(invoice, day("2026-03-01")) == "partially paid"
    assert invoice_state(invoice, day("2026-03-02")) == "overdue"
    payment_record(
        customer=invoice.customer,
        amount=Decimal("70.00"),
        currency="USD",
        received_on=day("2026-03-03"),
        allocations={invoice: Decimal("70.00")},
    )
    invoice.refresh_from_db()
    assert invoice_state(invoice, day("2026-03-04")) == "paid"


def invoice_of(subscription, number: str, *, due: str, total: str) -> Invoice:
    return Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        number=number,
        status=Invoice.Status.FINALIZED,
        billing_date=day(due),
        issue_date=day(due),
        due_date=day(due),
        currency="USD",
        subtotal=Decimal(total),
        total=Decimal(total),
    )


@pytest.mark.django_db
def test_the_portal_badge_and_the_admin_filter_agree_with_invoice_state(client):
    # Given on Mar 5: one invoice past due, one past due but paid, one not due yet, one due today
    customer = CustomerFactory(external_id="acme")
    subscription = subscribe(customer=customer, plan=PlanFactory())
    late = invoice_of(subscription, "INV-LATE", due="2026-03-01", total="100.00")
    paid = invoice_of(subscription, "INV-PAID", due="2026-02-28", total="50.00")
    payment_record(
        customer=customer,
        amount=Decimal("50.00"),
        currency="USD",
        received_on=day("2026-03-02"),
        allocations={paid: Decimal("50.00")},
    )
    invoice_of(subscription, "INV-SOON", due="2026-03-31", total="70.00")
    invoice_of(subscription, "INV-TODAY", due="2026-03-05", total="30.00")
    states = {
        i.number: invoice_state(i, day("2026-03-05")) for i in Invoice.objects.order_by("number")
    }
    assert states == {
        "INV-LATE": "overdue",
        "INV-PAID": "paid",
        "INV-SOON": "open",
        "INV-TODAY": "open",
    }

    with time_machine.travel("2026-03-05 12:00Z", tick=False):
        client.force_login(PortalMembershipFactory(customer=customer, user__username="ana").user)
        listed = client.get(reverse("portal:invoices")).content.decode()
        badges = {
            number: client.get(reverse("portal:invoice", args=[number]))
            .content.decode()
            .count('<span class="badge overdue">Overdue</span>')
            for number in states
        }
        client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
        page = client.get(reverse("admin:invoicing_invoice_changelist") + "?payment=overdue")

    assert listed.count('<span class="badge overdue">Overdue</span>') == 1
    assert badges == {"INV-LATE": 1, "INV-PAID": 0, "INV-SOON": 0, "INV-TODAY": 0}
    assert [i.number for i in page.context["cl"].result_list] == [late.number]


def finance(client):
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)


@pytest.mark.django_db
def test_finance_edits_a_policy_and_a_bad_template_shows_on_its_field(client):
    finance(client)
    url = reverse("admin:receivables_dunningpolicy_add")
    form = {
        "name": "Strict",
        "active": "on",
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-days_from_due": "5",
        "steps-0-name": "Late",
        "steps-0-subject": "Invoice {{ invoice.number }} is late",
        "steps-0-body": "Pay {{ amount_due }} {% if %}",
    }
    refused = client.post(url, form)
    assert refused.status_code == 200
    inline = refused.context["inline_admin_formsets"][0].formset.forms[0]
    assert inline.errors == {
        "body": ["This template does not render: Unexpected end of expression in if tag."]
    }
    assert not DunningPolicy.objects.filter(name="Strict").exists()

    saved = client.post(url, {**form, "steps-0-body": "Pay {{ amount_due }} now."})
    assert saved.status_code == 302
    policy = DunningPolicy.objects.get(name="Strict")
    assert [(s.days_from_due, s.name) for s in policy.steps.all()] == [(5, "Late")]


@pytest.mark.django_db(transaction=True)
def test_the_invoice_page_links_to_its_notices(client):
    invoice = due_march_1()
    run("2026-03-02")
    run("2026-03-08")
    # (a transactional test's flush removed the groups: a superuser reads it)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))
    notices_url = (
        reverse("admin:receivables_dunningnotice_changelist") + f"?invoice__id__exact={invoice.pk}"
    )
    assert f'href="{notices_url}">2 sent</a>' in page.content.decode()
    listed = client.get(notices_url)
    assert [(n.step.name, str(n.sent_on)) for n in listed.context["cl"].result_list] == [
        ("Second notice", "2026-03-08"),
        ("Payment overdue", "2026-03-02"),
    ]
    assert "$100.00" in listed.content.decode()
