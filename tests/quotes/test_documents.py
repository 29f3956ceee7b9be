"""The quote PDF, sending it to the customer, and the admin's PDF and send pages.

The realistic quote (tests/quotes/documents_fixtures.py), 24 months from Apr 1, 2026, billed
monthly — its figures by hand:

- Platform fee: list $1,500, 10 % off → $1,350.00 a month; 24 × = $32,400 (list $36,000).
- Seats, ramped: months 1–12 100 × $38 = $3,800.00, months 13–24 150 × $36 = $5,400.00 a month;
  12 × 3,800 + 12 × 5,400 = $110,400 (list 12 × 4,000 + 12 × 6,000 = $120,000).
- API calls, negotiated graduated tiers (first 1,000,000 at $0.0018, next to 10,000,000 at
  $0.0012, above at $0.001), estimated 2,500,000 a month: 1,000,000 × 0.0018 + 1,500,000 × 0.0012
  = $3,600.00 a month; minimum $1,000 a month → committed 24 × 1,000 = $24,000, estimated beyond
  it 24 × 2,600 = $62,400 (list: 1,000,000 × 0.002 + 1,500,000 × 0.0015 = $4,250 a month,
  24 × = $102,000).
- One-time: implementation $5,000; training 2 × $1,200 at 25 % off = 2 × $900 = $1,800 (list
  $2,400). Prepaid credits $2,000.

MRR month 1 = 1,350 + 3,800 = $5,150.00; at full ramp 1,350 + 5,400 = $6,750.00; ARR = 12 × 6,750
= $81,000.00. TCV = 32,400 + 110,400 + 24,000 + 5,000 + 1,800 + 2,000 = $175,600.00. ACV =
(175,600 − 6,800) / 2 = $84,400.00. First year = 12 × (1,350 + 3,800 + 1,000) + 6,800 + 2,000 =
$82,600.00. List = 36,000 + 120,000 + 102,000 + 5,000 + 2,400 + 2,000 = $267,400; net = 175,600 +
62,400 = $238,000; discount = $29,400.00 (29,400 / 267,400 = 11.0 %).
"""

import smtplib

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse

from core.errors import Conflict, ValidationError
from quotes.documents import quote_html, quote_pdf
from quotes.models import Quote, QuoteStatusChange
from quotes.sending import quote_send
from tests.factories import UserFactory
from tests.quotes.documents_fixtures import realistic_quote
from tests.test_pages_show_money import problems, visible_text

TODAY = "2026-03-02 10:00Z"
ACCEPT_URL = "https://billing.example/portal/quotes/1/"
pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(TODAY, tick=False):
        yield


def test_the_pdf_is_a_pdf():
    pdf = quote_pdf(realistic_quote())
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000


def test_the_document_holds_the_lines_ramp_tiers_totals_and_validity():
    quote = realistic_quote()

    text = visible_text(quote_html(quote))

    # seller, customer, number, validity, owner
    for expected in [
        "Tessellate AI, Inc.",
        "Northwind Traders, Inc.",
        "200 Pine Street, Floor 4",
        f"Quote {quote.number}",
        "Valid until Mar 31, 2026",
        "Prepared by Dana Whitfield",
        "Apr 1, 2026 – Mar 31, 2028 (24 months)",
        "Monthly, net 30 days",
    ]:
        assert expected in text, expected
    # recurring: quantity, list price, discount, net price, per month
    assert "Platform fee 1 unit $1,500.00 10 % $1,350.00 $1,350.00" in text
    assert "Seats Ramped: months 1–12 shown" in text
    assert "100 seats $40.00 — $38.00 $3,800.00" in text
    # the ramp, by phase
    assert "Seats Months 1–12 100 seats $38.00 $3,800.00" in text
    assert "Months 13–24 150 seats $36.00 $5,400.00" in text
    # usage: negotiated tiers in words, the estimate and the minimum
    assert "Each tier at its own price, per month:" in text
    assert "First 1,000,000 calls: $0.0018 per call" in text
    assert "Next 9,000,000 calls (1,000,001 – 10,000,000): $0.0012 per call" in text
    assert "Above 10,000,000 calls: $0.001 per call" in text
    assert "List price: First 1,000,000 calls: $0.002 per call; Above 1,000,000 calls:" in text
    assert "2,500,000 calls $1,000.00 $3,600.00" in text
    # one-time fees and credits
    assert "Implementation and onboarding 1 $5,000.00 — $5,000.00" in text
    assert "Admin training (half day) 2 $1,200.00 $900.00 25 % $1,800.00" in text
    assert "Prepaid usage credits" in text and "$2,000.00" in text
    # totals
    for label, amount in [
        ("Monthly recurring, month 1", "$5,150.00"),
        ("Monthly recurring, at full ramp", "$6,750.00"),
        ("Annual recurring (ARR)", "$81,000.00"),
        ("Annual contract value (ACV)", "$84,400.00"),
        ("First-year total", "$82,600.00"),
        ("Usage commitments over the term", "$24,000.00"),
        ("One-time fees", "$6,800.00"),
        ("Prepaid credits", "$2,000.00"),
        ("Total contract value (committed)", "$175,600.00"),
        ("Estimated usage over the term (not committed)", "$62,400.00"),
        ("Your discount against list (11.0 %)", "$29,400.00"),
    ]:
        assert f"{label} {amount}" in text, label
    # terms and the signature block
    assert "Payment terms Net 30 days" in text
    assert "Seats can be added at the phase's net price" in text
    assert "Name" in text and "Title" in text and "Signature" in text and "Date" in text
    assert problems("pdf", quote_html(quote)) == []


def test_a_draft_reads_as_a_draft():
    text = visible_text(quote_html(realistic_quote(status=Quote.Status.DRAFT)))

    assert "DRAFT — not for signature" in text


# --- sending ------------------------------------------------------------------------------------


def test_sending_emails_the_pdf_and_the_portal_link_and_marks_the_quote_sent():
    # Given an approved quote
    quote = realistic_quote()
    rep = UserFactory(username="sam", email="sam@tessellate.example")

    # When
    quote = quote_send(
        quote=quote,
        by=rep,
        to=" ap@northwind.example ",
        accept_url=ACCEPT_URL,
        message="As discussed on Tuesday.",
    )

    # Then the customer has the email, with the link and the PDF
    (email,) = mail.outbox
    assert email.to == ["ap@northwind.example"]
    assert email.reply_to == ["sam@tessellate.example"]
    assert email.subject == (
        f"Quote {quote.number} from Tessellate AI, Inc.: "
        "Tessellate Growth — two-year platform agreement"
    )
    assert ACCEPT_URL in email.body and "As discussed on Tuesday." in email.body
    assert "valid until Mar 31, 2026" in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html" and f'href="{ACCEPT_URL}"' in html
    ((name, content, kind),) = email.attachments
    assert (name, kind) == (f"{quote.number}.pdf", "application/pdf")
    assert content.startswith(b"%PDF-")
    # and the quote is sent, recorded with who and to whom
    quote.refresh_from_db()
    assert (quote.status, quote.sent_to) == (Quote.Status.SENT, "ap@northwind.example")
    assert quote.sent_at.isoformat() == "2026-03-02T10:00:00+00:00"
    change = QuoteStatusChange.objects.get(quote=quote)
    assert (change.from_status, change.to_status, change.by, change.reason) == (
        "approved",
        "sent",
        rep,
        "Sent to ap@northwind.example.",
    )


@pytest.mark.parametrize("status", [Quote.Status.DRAFT, Quote.Status.IN_REVIEW])
def test_a_quote_not_approved_is_not_sent(status):
    quote = realistic_quote(status=status)
    label = quote.get_status_display().lower()

    with pytest.raises(Conflict) as refused:
        quote_send(quote=quote, by=None, to="ap@northwind.example", accept_url=ACCEPT_URL)

    assert refused.value.message == (
        f"Quote {quote.number} is {label}: it is sent once approved (submit it for approval first)."
    )
    assert mail.outbox == []
    quote.refresh_from_db()
    assert (quote.status, quote.sent_at, quote.sent_to) == (status, None, "")
    assert not QuoteStatusChange.objects.exists()


def test_a_wrong_address_is_refused_before_anything():
    quote = realistic_quote()

    with pytest.raises(ValidationError, match="is not an email address"):
        quote_send(quote=quote, by=None, to="ap@northwind", accept_url=ACCEPT_URL)

    quote.refresh_from_db()
    assert quote.status == Quote.Status.APPROVED and mail.outbox == []


def test_when_the_email_fails_the_quote_stays_approved(monkeypatch):
    quote = realistic_quote()

    def refuse(self, fail_silently=False):
        raise smtplib.SMTPRecipientsRefused({"ap@northwind.example": (550, b"No such user")})

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)

    with pytest.raises(ValidationError, match="could not be sent") as refused:
        quote_send(quote=quote, by=None, to="ap@northwind.example", accept_url=ACCEPT_URL)

    assert f"Quote {quote.number} was not sent" in refused.value.message
    quote.refresh_from_db()
    assert (quote.status, quote.sent_at, quote.sent_to) == ("approved", None, "")
    assert not QuoteStatusChange.objects.exists()


def test_an_expired_quote_is_not_sent():
    quote = realistic_quote()
    with (
        time_machine.travel("2026-04-01 10:00Z", tick=False),
        pytest.raises(ValidationError, match="expired on Mar 31, 2026"),
    ):
        quote_send(quote=quote, by=None, to="ap@northwind.example", accept_url=ACCEPT_URL)
    assert mail.outbox == []


def test_a_sent_quote_is_sent_again_and_recorded():
    quote = quote_send(
        quote=realistic_quote(), by=None, to="ap@northwind.example", accept_url=ACCEPT_URL
    )

    quote_send(quote=quote, by=None, to="cfo@northwind.example", accept_url=ACCEPT_URL)

    quote.refresh_from_db()
    assert (quote.status, quote.sent_to) == ("sent", "cfo@northwind.example")
    assert [m.to for m in mail.outbox] == [["ap@northwind.example"], ["cfo@northwind.example"]]
    assert list(quote.status_changes.values_list("to_status", "reason")) == [
        ("sent", "Sent to ap@northwind.example."),
        ("sent", "Sent again to cfo@northwind.example."),
    ]


# --- the admin's pages --------------------------------------------------------------------------


@pytest.fixture
def rep_client(client):
    rep = UserFactory(username="rep", is_staff=True, email="rep@tessellate.example")
    rep.groups.add(Group.objects.get(name="Sales"))
    client.force_login(rep)
    return client


def test_the_admin_pdf_download(rep_client):
    quote = realistic_quote()

    response = rep_client.get(reverse("admin:quotes_quote_pdf", args=[quote.pk]))

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")


def test_the_send_page_offers_the_billing_email_and_sends(rep_client):
    quote = realistic_quote()
    url = reverse("admin:quotes_quote_send", args=[quote.pk])

    page = rep_client.get(url)
    assert page.status_code == 200
    assert 'value="ap@northwind.example"' in page.content.decode()

    response = rep_client.post(url, {"to": "ap@northwind.example", "message": "Hi"})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:quotes_quote_change", args=[quote.pk])
    (email,) = mail.outbox
    assert f"http://testserver/portal/quotes/{quote.pk}/" in email.body
    quote.refresh_from_db()
    assert quote.status == Quote.Status.SENT


def test_the_send_page_says_why_a_quote_in_review_is_not_sent(rep_client):
    quote = realistic_quote(status=Quote.Status.IN_REVIEW)
    url = reverse("admin:quotes_quote_send", args=[quote.pk])

    page = rep_client.get(url).content.decode()
    response = rep_client.post(url, {"to": "ap@northwind.example"})

    message = f"Quote {quote.number} is in review: it is sent once approved"
    assert message in page
    assert response.status_code == 422 and message in response.content.decode()
    assert mail.outbox == []


def test_the_change_page_offers_the_pdf_and_sending(client):
    quote = realistic_quote()  # approved
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:quotes_quote_change", args=[quote.pk])).content.decode()

    assert reverse("admin:quotes_quote_pdf", args=[quote.pk]) in page
    assert reverse("admin:quotes_quote_send", args=[quote.pk]) in page
    assert "Send to customer" in page
