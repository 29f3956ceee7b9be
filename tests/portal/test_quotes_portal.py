"""The portal's quotes: the customer sees the quotes sent to them and accepts one online.

The plain quote (no one-time fee, credit or ramp: what conversion supports on every branch):
acme, the hybrid plan for 3 months from Feb 1, 2026, valid until Jan 31, 2026 —
platform fee $500.00, 12 seats at $25.00 with 10 % off ($22.50 each → 12 × 22.50 = $270.00),
API calls at $0.002 (no estimate). MRR = 500 + 270 = $770.00 a month; TCV = 3 × 770 = $2,310.00.
"""

import pytest
import time_machine
from django.urls import reverse

from quotes.models import Quote, QuoteStatusChange
from quotes.services import quote_populate_lines
from subscriptions.models import Subscription
from tests.factories import (
    CustomerFactory,
    PortalMembershipFactory,
    QuoteFactory,
    UserFactory,
    day,
    hybrid_plan,
)

TODAY = "2026-01-10 09:00Z"
pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(TODAY, tick=False):
        yield


@pytest.fixture
def acme():
    return CustomerFactory(external_id="acme", name="Acme Corp")


@pytest.fixture
def member(client, acme):
    membership = PortalMembershipFactory(customer=acme, user=UserFactory(username="pat"))
    client.force_login(membership.user)
    return membership.user


def plain_quote(customer, status=Quote.Status.SENT, **fields) -> Quote:
    owner = UserFactory(username="dana", first_name="Dana", last_name="Whitfield")
    fields.setdefault("valid_until", day("2026-01-31"))
    quote = QuoteFactory(
        customer=customer,
        plan=hybrid_plan(),
        owner=owner,
        start_date=day("2026-02-01"),
        term_months=3,
        status=status,
        sent_at="2026-01-05T10:00Z" if status == Quote.Status.SENT else None,
        **fields,
    )
    quote_populate_lines(quote=quote)
    quote.lines.filter(description="Seats").update(quantity=12, discount_percent=10)
    return quote


def test_the_quotes_page_lists_only_the_customers_sent_quotes(client, member, acme):
    # Given acme's quotes in every state before sending, one sent, and another customer's
    sent = plain_quote(acme, title="Acme platform renewal")
    hidden = [
        plain_quote(acme, status=status)
        for status in (Quote.Status.DRAFT, Quote.Status.IN_REVIEW, Quote.Status.APPROVED)
    ]
    theirs = plain_quote(CustomerFactory(), title="Someone else's deal")

    # When
    page = client.get(reverse("portal:quotes")).content.decode()

    # Then
    assert f'href="/portal/quotes/{sent.pk}/"' in page and "Acme platform renewal" in page
    assert "Review and accept" in page
    for quote in [*hidden, theirs]:
        assert f"/portal/quotes/{quote.pk}/" not in page
    assert 'href="/portal/quotes/" aria-current="page">Quotes</a>' in page


@pytest.mark.parametrize(
    "status", [Quote.Status.DRAFT, Quote.Status.IN_REVIEW, Quote.Status.APPROVED]
)
def test_a_quote_not_sent_yet_is_not_found(client, member, acme, status):
    quote = plain_quote(acme, status=status)

    for name in ("portal:quote", "portal:quote_pdf"):
        assert client.get(reverse(name, args=[quote.pk])).status_code == 404


def test_another_customers_quote_is_not_found(client, member):
    quote = plain_quote(CustomerFactory())

    assert client.get(reverse("portal:quote", args=[quote.pk])).status_code == 404
    assert client.get(reverse("portal:quote_pdf", args=[quote.pk])).status_code == 404
    response = client.post(
        reverse("portal:quote", args=[quote.pk]), {"name": "X", "title": "Y", "accept": "on"}
    )
    assert response.status_code == 404
    quote.refresh_from_db()
    assert quote.status == Quote.Status.SENT


def test_the_quote_page_shows_the_summary_the_pdf_and_the_acceptance_form(client, member, acme):
    quote = plain_quote(acme)

    response = client.get(reverse("portal:quote", args=[quote.pk]))
    page = " ".join(response.content.decode().split())

    assert response.status_code == 200
    assert f"Quote {quote.number}" in page and "Valid until" in page and "Jan 31, 2026" in page
    # seats: list $25.00, 10 % off, net $22.50, 12 × 22.50 = $270.00 a month
    assert "$25.00" in page and "10 %" in page and "$22.50" in page and "$270.00" in page
    assert "$770.00" in page  # MRR: 500 + 270
    assert "$2,310.00" in page  # TCV: 3 × 770
    assert "$0.002 per call" in page
    assert f'href="/portal/quotes/{quote.pk}/pdf/"' in page
    assert "I accept this quote on behalf of Acme Corp" in page
    assert "Date: <strong>Jan 10, 2026</strong>" in page

    pdf = client.get(reverse("portal:quote_pdf", args=[quote.pk]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")


def test_accepting_in_the_portal_creates_the_subscription(client, member, acme):
    # needs quotes' conversion (subscriptions.services.subscription_create with the quote's
    # billing interval and credits), finished in parallel
    quote = plain_quote(acme, subscription_external_id="sub_acme")

    response = client.post(
        reverse("portal:quote", args=[quote.pk]),
        {"name": " Jordan Lee ", "title": "CFO", "accept": "on"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("portal:quote", args=[quote.pk])
    quote.refresh_from_db()
    assert quote.status == Quote.Status.ACCEPTED
    assert (quote.accepted_by_name, quote.accepted_by_title) == ("Jordan Lee", "CFO")
    assert quote.accepted_at.isoformat() == "2026-01-10T09:00:00+00:00"
    subscription = Subscription.objects.get()
    assert (quote.subscription, subscription.external_id) == (subscription, "sub_acme")
    change = quote.status_changes.get()
    assert (change.from_status, change.to_status, change.by, change.reason) == (
        "sent",
        "accepted",
        member,
        "Accepted by Jordan Lee, CFO.",
    )
    page = client.get(response["Location"]).content.decode()
    assert "Thank you: quote" in page and "Accepted by <strong>Jordan Lee</strong>, CFO" in page


def test_acceptance_needs_the_name_the_title_and_the_checkbox(client, member, acme):
    quote = plain_quote(acme)

    response = client.post(reverse("portal:quote", args=[quote.pk]), {"name": "Jordan Lee"})

    page = response.content.decode()
    assert response.status_code == 422
    assert "Enter your title" in page and "Tick the box to accept the quote" in page
    quote.refresh_from_db()
    assert (quote.status, quote.subscription_id) == (Quote.Status.SENT, None)
    assert not Subscription.objects.exists() and not QuoteStatusChange.objects.exists()


def test_an_expired_quote_cannot_be_accepted(client, member, acme):
    # valid until yesterday, still sent (the daily job has not expired it yet)
    quote = plain_quote(acme, valid_until=day("2026-01-09"))

    page = client.get(reverse("portal:quote", args=[quote.pk])).content.decode()
    response = client.post(
        reverse("portal:quote", args=[quote.pk]),
        {"name": "Jordan Lee", "title": "CFO", "accept": "on"},
    )

    message = (
        "This quote expired on Jan 9, 2026 and can no longer be accepted: contact Dana "
        "Whitfield for a new one."
    )
    assert message in page and "I accept this quote" not in page
    assert response.status_code == 409 and message in response.content.decode()
    quote.refresh_from_db()
    assert (quote.status, quote.subscription_id, quote.accepted_at) == ("sent", None, None)
    assert not Subscription.objects.exists() and not QuoteStatusChange.objects.exists()


def test_a_quote_the_daily_job_expired_cannot_be_accepted(client, member, acme):
    quote = plain_quote(acme)
    Quote.objects.filter(pk=quote.pk).update(status=Quote.Status.EXPIRED)

    response = client.post(
        reverse("portal:quote", args=[quote.pk]),
        {"name": "Jordan Lee", "title": "CFO", "accept": "on"},
    )

    assert response.status_code == 409
    assert "can no longer be accepted" in response.content.decode()
    assert not Subscription.objects.exists()


def test_the_quotes_page_at_375_px_stacks_its_table(client, member, acme):
    plain_quote(acme)

    page = client.get(reverse("portal:quotes")).content.decode()

    # base.html's phone layout: each row a block, each value labelled by its column
    assert 'class="stack-sm"' in page and 'data-label="Valid until"' in page
