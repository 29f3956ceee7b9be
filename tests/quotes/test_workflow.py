"""A quote's life: submit → (review → approve | reject) → send → accept | decline | expire, new
versions; each move recorded with who, when and why; finance's approval rules."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group

from core.errors import Conflict, ValidationError
from quotes.models import ApprovalRule, Quote, QuoteStatusChange
from quotes.services import (
    quote_approve,
    quote_decline,
    quote_edited,
    quote_mark_sent,
    quote_new_version,
    quote_reject,
    quote_submit,
    quotes_expire_overdue,
)
from tests.factories import UserFactory
from tests.quotes.deal import northwind_deal

pytestmark = pytest.mark.django_db
TODAY = "2026-12-01 09:00Z"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(TODAY, tick=False):
        yield


def user(name: str, role: str):
    person = UserFactory(username=name, is_staff=True)
    person.groups.add(Group.objects.get(name=role))
    return person


@pytest.fixture
def rep():
    return user("rep", "Sales")


@pytest.fixture
def approver():
    return user("cfo", "Finance")


def rule(kind, threshold, currency="", name=None):
    return ApprovalRule.objects.create(
        name=name or kind.replace("_", " "), kind=kind, threshold=D(threshold), currency=currency
    )


def moves(quote) -> list[tuple[str, str, str | None, str]]:
    return [
        (c.from_status, c.to_status, c.by.username if c.by else None, c.reason)
        for c in QuoteStatusChange.objects.filter(quote=quote)
    ]


def test_a_quote_no_rule_applies_to_is_approved_on_submission(rep):
    quote = quote_submit(quote=northwind_deal(), by=rep)
    assert quote.status == Quote.Status.APPROVED
    assert moves(quote) == [("draft", "approved", "rep", "Submitted: no approval rule applies.")]
    change = QuoteStatusChange.objects.get(quote=quote)
    assert change.at.isoformat() == "2026-12-01T09:00:00+00:00"


def test_each_rule_kind_trips_with_a_reason_a_person_reads(rep):
    # The deal's figures (tests/quotes/deal.py): seats 12.70 % off list, implementation 25 %,
    # total 10.96 %, TCV 209,760.00, ACV 100,380.00, MRR month 1 4,600.00; payment terms 45 days.
    rule(ApprovalRule.Kind.LINE_DISCOUNT_ABOVE, "20", name="Deep line discount")
    rule(ApprovalRule.Kind.TOTAL_DISCOUNT_ABOVE, "10", name="Deal discount")
    rule(ApprovalRule.Kind.TCV_ABOVE, "200000", "USD", name="Large deal")
    rule(ApprovalRule.Kind.ACV_ABOVE, "100000", "USD", name="Large ACV")
    rule(ApprovalRule.Kind.MRR_BELOW, "5000", "USD", name="Small MRR")
    rule(ApprovalRule.Kind.PAYMENT_TERMS_ABOVE, "30", name="Long terms")
    rule(ApprovalRule.Kind.TCV_ABOVE, "1", "EUR", name="EUR only")  # another currency: ignored
    ApprovalRule.objects.create(
        name="Off", kind="tcv_above", threshold=D(1), currency="USD", active=False
    )

    quote = quote_submit(quote=northwind_deal(payment_terms_days=45), by=rep)

    assert quote.status == Quote.Status.IN_REVIEW
    # (in the rules' order: by kind, then threshold)
    assert quote.approval_reasons == [
        "Large ACV: the annual contract value $100,380.00 is above $100,000.00.",
        "Deep line discount: 'Implementation' is discounted 25 %, above 20 %.",
        "Small MRR: the monthly recurring revenue $4,600.00 is below $5,000.00.",
        "Long terms: payment terms of 45 days are longer than 30 days.",
        "Large deal: the total contract value $209,760.00 is above $200,000.00.",
        "Deal discount: the total discount against list is 10.96 % ($30,240.00), above 10 %.",
    ]
    assert moves(quote)[0][:3] == ("draft", "in_review", "rep")


def test_only_finance_approves_and_a_rejection_says_why(rep, approver):
    rule(ApprovalRule.Kind.LINE_DISCOUNT_ABOVE, "5")
    quote = quote_submit(quote=northwind_deal(), by=rep)

    with pytest.raises(Conflict, match="Only finance"):
        quote_approve(quote=quote, by=rep)
    with pytest.raises(ValidationError, match="Say why"):
        quote_reject(quote=quote, by=approver, comment="  ")
    quote = quote_reject(quote=quote, by=approver, comment="10 % is the most on seats.")
    assert quote.status == Quote.Status.DRAFT

    quote = quote_submit(quote=quote, by=rep)
    quote = quote_approve(quote=quote, by=approver, comment="OK for a 2-year term.")
    assert quote.status == Quote.Status.APPROVED
    assert [m[:3] for m in moves(quote)] == [
        ("draft", "in_review", "rep"),
        ("in_review", "draft", "cfo"),
        ("draft", "in_review", "rep"),
        ("in_review", "approved", "cfo"),
    ]
    assert moves(quote)[1][3] == "10 % is the most on seats."
    assert moves(quote)[3][3] == "OK for a 2-year term."


def test_a_rep_cannot_send_what_still_needs_approval(rep):
    rule(ApprovalRule.Kind.LINE_DISCOUNT_ABOVE, "5")
    draft = northwind_deal()
    with pytest.raises(Conflict, match="submit it for approval first"):
        quote_mark_sent(quote=draft, by=rep)
    in_review = quote_submit(quote=draft, by=rep)
    with pytest.raises(Conflict, match="submit it for approval first"):
        quote_mark_sent(quote=in_review, by=rep)
    assert Quote.objects.get().status == Quote.Status.IN_REVIEW


def test_an_approved_quote_edited_goes_back_to_review(rep, approver):
    quote = quote_submit(quote=northwind_deal(), by=rep)  # no rule yet: approved
    rule(ApprovalRule.Kind.LINE_DISCOUNT_ABOVE, "30")
    seats = quote.lines.get(description="Seats")
    seats.discount_percent = D(35)
    seats.save()

    quote = quote_edited(quote=quote, by=rep)

    # The line's discount against list over the term: 35 % off, and the negotiated 38.00 of
    # months 13–24 below the 40.00 list: (12 × 100 × 40 + 12 × 150 × 40) = 120,000 list,
    # (12 × 100 × 26.00 + 12 × 150 × 24.70) = 75,660 net: 36.95 % off
    assert quote.status == Quote.Status.IN_REVIEW
    assert quote.approval_reasons == [
        "line discount above: 'Seats' is discounted 36.95 %, above 30 %."
    ]
    assert moves(quote)[-1][:3] == ("approved", "in_review", "rep")


def test_a_quote_with_a_broken_ramp_is_not_submitted(rep):
    quote = northwind_deal()
    quote.lines.get(description="Seats").phases.filter(start_month=13).update(start_month=14)
    with pytest.raises(ValidationError) as refused:
        quote_submit(quote=quote, by=rep)
    assert refused.value.message == "Line 2 (Seats): Months 13–13 are in no phase."
    assert Quote.objects.get().status == Quote.Status.DRAFT
    assert not QuoteStatusChange.objects.exists()


def test_sent_then_declined_and_final_states_stay_final(rep):
    quote = quote_mark_sent(quote=quote_submit(quote=northwind_deal(), by=rep), by=rep, to="a@b.c")
    assert (quote.status, quote.sent_to) == (Quote.Status.SENT, "a@b.c")
    quote = quote_decline(quote=quote, by=rep, reason="Chose a competitor.")
    with pytest.raises(Conflict, match="is declined; it cannot become sent"):
        quote_mark_sent(quote=quote, by=rep)
    assert moves(quote)[-1] == ("sent", "declined", "rep", "Chose a competitor.")


def test_open_quotes_past_their_validity_expire(rep):
    draft = northwind_deal(valid_until=dt.date(2026, 11, 30))
    approved = quote_submit(quote=northwind_deal(
        customer=draft.customer, plan=draft.plan, valid_until=dt.date(2026, 11, 30)
    ), by=rep)  # fmt: skip
    valid = northwind_deal(customer=draft.customer, plan=draft.plan)  # until Dec 31
    assert quotes_expire_overdue() == 2
    statuses = {q.pk: q.status for q in Quote.objects.all()}
    assert statuses == {draft.pk: "expired", approved.pk: "expired", valid.pk: "draft"}


def test_a_new_version_copies_the_deal_and_supersedes_the_sent_quote(rep):
    sent = quote_mark_sent(quote=quote_submit(quote=northwind_deal(), by=rep), by=rep)

    new = quote_new_version(quote=sent, by=rep)

    sent.refresh_from_db()
    assert sent.status == Quote.Status.SUPERSEDED
    assert (new.status, new.version, new.revision_of, new.number) == (
        Quote.Status.DRAFT,
        2,
        sent,
        f"Q-{new.pk:05d} v2",
    )

    def deal(quote):
        return [
            (
                line.description,
                line.quantity,
                line.discount_percent,
                [(t.up_to, t.unit_price) for t in line.tiers.all()],
                [(p.start_month, p.end_month, p.quantity, p.unit_price) for p in line.phases.all()],
            )
            for line in quote.lines.all()
        ]

    assert deal(new) == deal(sent)
    assert len(deal(new)[2][3]) == 2 and len(deal(new)[1][4]) == 2
    with pytest.raises(Conflict, match="is superseded"):
        quote_mark_sent(quote=sent, by=rep)
    with pytest.raises(Conflict, match="is superseded: a new version is made of"):
        quote_new_version(quote=sent, by=rep)


def test_a_declined_quote_gets_one_new_version(rep):
    declined = quote_decline(quote=quote_submit(quote=northwind_deal(), by=rep), by=rep)
    new = quote_new_version(quote=declined, by=rep)
    declined.refresh_from_db()
    assert (declined.status, new.version) == (Quote.Status.DECLINED, 2)
    with pytest.raises(Conflict, match=f"already has a new version: Q-{new.pk:05d} v2"):
        quote_new_version(quote=declined, by=rep)


def test_an_approved_quote_edited_into_a_problem_goes_back_to_draft(rep):
    quote = quote_submit(quote=northwind_deal(), by=rep)  # approved
    Quote.objects.filter(pk=quote.pk).update(term_months=36)  # the ramp covers 24 months

    quote = quote_edited(quote=quote, by=rep)

    assert quote.status == Quote.Status.DRAFT
    assert moves(quote)[-1] == (
        "approved",
        "draft",
        "rep",
        "Edited: Line 2 (Seats): Months 25–36 of the 36-month term are in no phase.",
    )
    with pytest.raises(Conflict, match="submit it for approval first"):
        quote_mark_sent(quote=quote, by=rep)


def test_a_term_the_ramp_no_longer_fits_is_refused_on_the_term():
    from django.core.exceptions import ValidationError as FormError

    quote = northwind_deal()
    quote.term_months = 36
    with pytest.raises(FormError) as refused:
        quote.full_clean()
    assert refused.value.message_dict == {
        "term_months": [
            "The ramp of 'Seats' no longer fits: Months 25–36 of the 36-month term are in no "
            "phase. Change its phases (Tiers & ramp) first, or keep the term and billing interval."
        ]
    }
    quote.term_months, quote.billing_interval_months = 24, 12  # phases start months 1 and 13
    quote.full_clean()
    quote.billing_interval_months = 6
    quote.full_clean()  # months 1 and 13 start 6-month periods too
