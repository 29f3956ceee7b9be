"""A sales rep builds a quote in the Django admin, moves it through approval and acceptance, and
finance approves it from its queue."""

import datetime as dt
import re
from decimal import Decimal
from html import escape

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages

from quotes.models import ApprovalRule, Quote, QuoteLinePhase, QuoteStatusChange
from quotes.services import quote_accept, quote_mark_sent, quote_submit
from subscriptions.models import Subscription
from tests.factories import CustomerFactory, QuoteFactory, UserFactory, hybrid_plan
from tests.quotes.helpers import change_data

pytestmark = pytest.mark.usefixtures("admin_clock")


def _add_quote(client, customer, plan, **extra):
    data = {
        "customer": customer.pk,
        "plan": plan.pk,
        "title": "Acme 2026",
        "start_date": "2026-03-15",
        "term_months": "12",
        "valid_until": "2026-03-31",
        "subscription_external_id": "sub_acme_2026",
        "lines-TOTAL_FORMS": "0",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        **extra,
    }
    return client.post("/admin/quotes/quote/add/", data)


def notes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def finance_client(db, admin_clock):
    from django.test import Client

    fiona = UserFactory(username="fiona", is_staff=True)
    fiona.groups.add(Group.objects.get(name="Finance"))
    client = Client()
    client.force_login(fiona)
    return client


def discount_rule():
    return ApprovalRule.objects.create(
        name="Line discount above 5%",
        kind=ApprovalRule.Kind.LINE_DISCOUNT_ABOVE,
        threshold=Decimal("5"),
    )


def test_a_new_quote_gets_one_line_per_plan_charge_at_catalog_prices(sales_client):
    customer, plan = CustomerFactory(), hybrid_plan()
    response = _add_quote(sales_client, customer, plan)
    assert response.status_code == 302, response.content
    quote = Quote.objects.get()
    lines = [(line.description, line.quantity, line.unit_price) for line in quote.lines.all()]
    assert lines == [
        ("Platform fee", Decimal("1"), None),  # empty: the catalog price
        ("Seats", Decimal("5"), None),
        ("API calls", Decimal("0"), None),
    ]
    assert quote.owner.username == "rep"
    page = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    # The columns of a line, the list price as the unit price's placeholder, and the figures
    for name in ("kind", "charge", "discount_percent", "discount_amount", "estimated_quantity"):
        assert f'name="lines-0-{name}"' in html, name
    assert 'placeholder="list $25.00"' in html
    for label in ("Net / period", "Tiers &amp; ramp"):
        assert label in html
    # Totals: fixed fees 500 + 5 × 25 = 625.00 a month; TCV 12 × 625 = 7,500.00
    assert re.search(r'data-figure="mrr_first">\$625.00<', html)
    assert re.search(r'data-figure="tcv">\$7,500.00<', html)
    assert re.search(r'data-figure="arr">\$7,500.00<', html)
    assert 'value="submit"' in html  # Submit for approval saves the edits first
    assert "Approve" not in re.sub(r"approv(al|ed)", "", html)  # a rep cannot approve


def test_the_owner_is_the_rep_by_default(sales_client):
    page = sales_client.get("/admin/quotes/quote/add/").content.decode()
    rep = re.search(r'<option value="(\d+)" selected>rep</option>', page)
    assert rep is not None


def test_invalid_quote_form_shows_errors_and_saves_nothing(sales_client):
    customer, plan = CustomerFactory(), hybrid_plan()
    response = _add_quote(sales_client, customer, plan, start_date="not a date", term_months="")
    assert response.status_code == 200
    assert b"Enter a valid date." in response.content
    assert Quote.objects.count() == 0


def draft(plan=None, **fields):
    from quotes.services import quote_populate_lines

    quote = QuoteFactory(
        customer=CustomerFactory(billing_email="buyer@acme.example"),
        plan=plan or hybrid_plan(),
        start_date=dt.date(2026, 3, 15),
        term_months=12,
        valid_until=dt.date(2026, 3, 31),
        **fields,
    )
    quote_populate_lines(quote=quote)
    return Quote.objects.get(pk=quote.pk)


def test_submit_saves_the_edits_then_approves_when_no_rule_applies(sales_client):
    quote = draft()
    data = change_data(quote) | {"lines-1-quantity": "10", "_workflow": "submit"}

    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/change/", data)

    assert response.status_code == 302
    assert f"Quote {quote.number} is approved: no approval rule applies." in notes(response)
    quote.refresh_from_db()
    assert quote.status == Quote.Status.APPROVED
    assert quote.lines.get(description="Seats").quantity == 10


def test_submit_with_a_discount_goes_to_review_with_the_reason(sales_client):
    discount_rule()
    quote = draft()
    data = change_data(quote) | {"lines-1-discount_percent": "10", "_workflow": "submit"}

    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/change/", data, follow=True)

    quote.refresh_from_db()
    reason = "Line discount above 5%: 'Seats' is discounted 10 %, above 5 %."
    assert (quote.status, quote.approval_reasons) == (Quote.Status.IN_REVIEW, [reason])
    html = response.content.decode()
    assert escape(reason) in html  # in the message and under the status
    assert 'name="lines-0-quantity"' not in html  # in review: read-only
    history = QuoteStatusChange.objects.get(quote=quote)
    assert (history.from_status, history.to_status, history.by.username) == (
        "draft",
        "in_review",
        "rep",
    )
    assert "Draft → In review" in html


def test_a_term_the_ramp_does_not_cover_is_refused_on_the_term(sales_client):
    # Given seats ramped over the 12 months of the term
    quote = draft()
    seats = quote.lines.get(description="Seats")
    QuoteLinePhase.objects.create(line=seats, start_month=1, end_month=12, quantity=5)
    # When the rep makes the term 24 months and submits
    data = change_data(quote) | {"term_months": "24", "_workflow": "submit"}

    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/change/", data)

    # Then the page refuses the term, saying why, and nothing is saved or submitted
    assert response.status_code == 200
    assert response.context_data["adminform"].form.errors["term_months"] == [
        "The ramp of 'Seats' no longer fits: Months 13–24 of the 24-month term are in no "
        "phase. Change its phases (Tiers & ramp) first, or keep the term and billing interval."
    ]
    quote.refresh_from_db()
    assert (quote.status, quote.term_months) == (Quote.Status.DRAFT, 12)


def test_a_rep_cannot_approve_and_finance_approves_from_the_queue(sales_client, finance_client):
    discount_rule()
    quote = draft()
    line = quote.lines.get(description="Seats")
    line.discount_percent = Decimal("10")
    line.save()
    quote_submit(quote=quote)
    approve_url = f"/admin/quotes/quote/{quote.pk}/workflow/approve/"

    assert sales_client.get(approve_url).status_code == 403
    assert sales_client.post(approve_url, {"comment": "ok"}).status_code == 403
    listing = sales_client.post(
        "/admin/quotes/quote/", {"action": "approve", "_selected_action": [quote.pk]}
    )
    assert "approve" not in listing.content.decode()  # not offered
    quote.refresh_from_db()
    assert quote.status == Quote.Status.IN_REVIEW

    page = finance_client.get(f"/admin/quotes/quote/{quote.pk}/change/").content.decode()
    assert approve_url in page and "Reject" in page
    response = finance_client.post(approve_url, {"comment": "Strategic logo."})
    assert response.status_code == 302
    assert f"Quote {quote.number} is approved." in notes(response)
    quote.refresh_from_db()
    assert quote.status == Quote.Status.APPROVED
    last = quote.status_changes.last()
    assert (last.by.username, last.reason) == ("fiona", "Strategic logo.")


def test_a_rejection_needs_a_comment_and_sends_the_quote_back(finance_client):
    discount_rule()
    quote = draft()
    quote.lines.filter(description="Seats").update(discount_percent=Decimal("20"))
    quote_submit(quote=quote)
    url = f"/admin/quotes/quote/{quote.pk}/workflow/reject/"

    empty = finance_client.post(url, {"comment": ""})
    assert empty.status_code == 200 and b"This field is required." in empty.content
    quote.refresh_from_db()
    assert quote.status == Quote.Status.IN_REVIEW

    finance_client.post(url, {"comment": "10 % at most."})
    quote.refresh_from_db()
    assert (quote.status, quote.status_changes.last().reason) == ("draft", "10 % at most.")


def test_the_approval_queue_lists_only_quotes_in_review_with_their_reasons(finance_client):
    discount_rule()
    waiting = draft()
    waiting.lines.filter(description="Seats").update(discount_percent=Decimal("10"))
    quote_submit(quote=waiting)
    approved = quote_submit(quote=draft())
    still_draft = draft()

    page = finance_client.get("/admin/quotes/quote/", {"status__exact": "in_review"})
    html = page.content.decode()

    assert [q.pk for q in page.context["cl"].result_list] == [waiting.pk]
    assert "&#x27;Seats&#x27; is discounted 10 %, above 5 %" in html
    assert approved.number not in html and still_draft.number not in html
    # The sidebar links the queue, with its count
    assert "/admin/quotes/quote/?status__exact=in_review" in html
    from quotes.admin import approval_queue_badge

    assert approval_queue_badge(page.wsgi_request) == "1"


def test_an_edited_approved_quote_goes_back_to_review(sales_client):
    discount_rule()
    quote = quote_submit(quote=draft())
    assert quote.status == Quote.Status.APPROVED
    quote = Quote.objects.get(pk=quote.pk)
    data = change_data(quote) | {"lines-1-discount_percent": "8"}

    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/change/", data)

    assert response.status_code == 302
    quote.refresh_from_db()
    assert quote.status == Quote.Status.IN_REVIEW
    assert quote.approval_reasons == [
        "Line discount above 5%: 'Seats' is discounted 8 %, above 5 %."
    ]
    assert any("went back to review" in n for n in notes(response))


def test_an_approved_quote_edited_within_the_rules_stays_approved(sales_client):
    discount_rule()
    quote = Quote.objects.get(pk=quote_submit(quote=draft()).pk)
    data = change_data(quote) | {"lines-1-quantity": "7"}

    sales_client.post(f"/admin/quotes/quote/{quote.pk}/change/", data)

    quote.refresh_from_db()
    assert quote.status == Quote.Status.APPROVED


def test_mark_sent_accept_and_its_subscription_once(sales_client):
    quote = Quote.objects.get(pk=quote_submit(quote=draft()).pk)
    sales_client.post(
        f"/admin/quotes/quote/{quote.pk}/change/", change_data(quote) | {"_workflow": "mark_sent"}
    )
    quote.refresh_from_db()
    assert (quote.status, quote.sent_to) == (Quote.Status.SENT, "buyer@acme.example")

    page = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/").content.decode()
    accept_url = f"/admin/quotes/quote/{quote.pk}/workflow/accept/"
    assert accept_url in page  # sent: read-only, the button opens the accept page
    response = sales_client.post(accept_url, {"name": "Wile E. Coyote", "title": "CTO"})

    assert response.status_code == 302
    quote.refresh_from_db()
    subscription = Subscription.objects.get()
    assert (quote.status, quote.subscription, quote.accepted_by_name, quote.accepted_by_title) == (
        Quote.Status.ACCEPTED,
        subscription,
        "Wile E. Coyote",
        "CTO",
    )
    again = sales_client.post(accept_url, {"name": "Wile E. Coyote"})
    assert again.status_code == 200
    assert f"was already accepted: it created subscription {subscription.external_id}" in (
        again.content.decode()
    )
    assert Subscription.objects.count() == 1


def test_a_draft_cannot_be_marked_sent(sales_client):
    quote = draft()
    response = sales_client.post(
        "/admin/quotes/quote/", {"action": "mark_sent", "_selected_action": [quote.pk]}
    )
    assert any("it is sent once approved" in n for n in notes(response))
    quote.refresh_from_db()
    assert quote.status == Quote.Status.DRAFT


def test_new_version_copies_a_sent_quote_and_opens_the_draft(sales_client):
    quote = quote_mark_sent(quote=quote_submit(quote=draft()))
    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/workflow/new_version/")

    copy = Quote.objects.get(revision_of=quote)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/quotes/quote/{copy.pk}/change/"
    quote.refresh_from_db()
    assert (quote.status, copy.status, copy.version, copy.lines.count()) == (
        Quote.Status.SUPERSEDED,
        Quote.Status.DRAFT,
        2,
        3,
    )


def test_decline_records_the_reason(sales_client):
    quote = draft()
    sales_client.post(
        f"/admin/quotes/quote/{quote.pk}/workflow/decline/", {"reason": "Went with a rival."}
    )
    quote.refresh_from_db()
    assert (quote.status, quote.status_changes.get().reason) == (
        Quote.Status.DECLINED,
        "Went with a rival.",
    )


def test_a_sent_quote_shows_its_lines_read_only_with_plain_prices(sales_client):
    quote = draft()
    quote.lines.filter(description="Seats").update(unit_price=Decimal("22.5"))
    quote = quote_mark_sent(quote=quote_submit(quote=quote))
    page = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/").content.decode()
    shown = re.findall(r"field-net_price[^>]*>\s*(?:<[^>]+>\s*)*([^<\s][^<]*?)\s*<", page)
    # Platform fee 500.00; seats 5 × 22.50 = 112.50; API calls: nothing estimated
    assert shown == ["$500.00", "$112.50", "$0.00"]
    assert 'name="lines-0-quantity"' not in page  # no editable line fields once sent


def test_an_accepted_quote_links_its_subscription_and_cannot_be_deleted(sales_client):
    quote = draft()
    url, delete = (
        f"/admin/quotes/quote/{quote.pk}/change/",
        f"/admin/quotes/quote/{quote.pk}/delete/",
    )
    assert delete in sales_client.get(url).content.decode()  # a draft may be deleted

    quote_accept(quote=quote_submit(quote=quote), name="Ana")
    subscription = Subscription.objects.get()
    html = sales_client.get(url).content.decode()

    link = (
        f'<a href="/admin/subscriptions/subscription/{subscription.pk}/change/"'
        ' class="text-primary-600 dark:text-primary-500">'
    )
    assert link + f"{subscription.external_id}</a>" in html
    assert delete not in html
    assert sales_client.get(delete).status_code == 403
