"""Month-end close (revrec/close.py): the checklist's four checks fail and pass on the documents
behind them; a close is refused, naming the failing checks, and changes nothing; periods close in
order; only the latest closed period reopens, with a reason kept in its history."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group

from core.errors import ValidationError
from invoicing.models import Invoice
from invoicing.services import billing_run
from receivables.services import payment_record
from revrec.close import (
    close_checklist,
    period_cash_review,
    period_close,
    period_reopen,
    unapplied_cash,
)
from revrec.ledger import period_for
from revrec.models import AccountingPeriod
from revrec.recognition import contracts_sync, recognize
from tests.factories import CustomerFactory, UserFactory, day, hybrid_plan, subscribe
from tests.revrec.ledger import post

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def finance():
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def month(text: str) -> AccountingPeriod:
    return period_for(dt.date.fromisoformat(f"{text}-01"))


def checks(period) -> dict[str, tuple[bool, list[str]]]:
    return {check.key: (check.ok, check.items) for check in close_checklist(period)}


def reviewed(period, by) -> AccountingPeriod:
    return period_cash_review(period=period, by=by)


def snapshot(period) -> tuple:
    period.refresh_from_db()
    return (period.status, period.closed_at, period.closed_by_id, period.history.count())


def test_a_quiet_month_passes_everything_but_the_cash_review(finance):
    # Given January with nothing in it
    january = month("2026-01")

    # Then billing, drafts and recognition pass; the cash review waits for finance's tick
    assert checks(january) == {
        "billing": (True, []),
        "drafts": (True, []),
        "recognition": (True, []),
        "cash": (False, []),
    }
    # When finance confirms it, every check passes
    january = reviewed(january, finance)
    assert all(ok for ok, _ in checks(january).values())


def test_the_billing_check_fails_until_the_billing_run_bills_the_period():
    # Given a subscription from Jan 15: platform 500.00 + 5 seats × 25.00 due on Jan 15
    subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    january = month("2026-01")

    # Then January's billing is not complete: the Jan 15 invoice of 625.00 is not made
    assert checks(january)["billing"] == (
        False,
        ["sub_acme: billing date Jan 15 would bill $625.00"],
    )
    # When the billing run on Jan 15 bills it, the check passes
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    assert checks(january)["billing"] == (True, [])
    # And February, whose date is Feb 15, is not complete yet
    assert checks(month("2026-02"))["billing"][0] is False


def test_the_drafts_check_names_each_draft_dated_in_the_period():
    # Given a draft invoice with a billing date of Jan 15 (billing dates in the month count)
    customer = CustomerFactory(name="Acme Corp")
    subscription = subscribe(customer=customer, plan=hybrid_plan())
    draft = Invoice.objects.create(
        customer=customer, subscription=subscription, billing_date=day("2026-01-15"), currency="USD"
    )

    # Then January's drafts check fails, naming it; February's passes
    assert checks(month("2026-01"))["drafts"] == (False, ["Acme Corp — draft of Jan 15, 2026"])
    assert checks(month("2026-02"))["drafts"] == (True, [])

    # When it is deleted (a draft can be), the check passes
    draft.delete()
    assert checks(month("2026-01"))["drafts"] == (True, [])


def test_the_recognition_check_waits_for_the_contract_the_run_and_the_months_revenue():
    # Given a 3-month subscription from Jan 15: platform 500.00 + 5 seats × 25.00 a month, and
    # API calls in arrears
    subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    january = month("2026-01")

    # Then January's recognition waits for its revenue contract
    assert checks(january)["recognition"] == (False, ["sub_acme: no revenue contract yet"])

    # When the contract is made: 1,500.00 and 375.00 over 90 days, January's 17 days earn
    # 1500 × 17/90 = 283.33… and 375 × 17/90 = 70.83… (the cents left by the floors go to
    # February's and March's larger remainders); the run has not run for January
    contracts_sync()
    assert checks(january)["recognition"] == (
        False,
        [
            "the recognition run has not run for January 2026 since the month ended",
            "sub_acme: Platform fee Jan 2026 $283.33",
            "sub_acme: Seats Jan 2026 $70.83",
        ],
    )

    # When January is recognized on Jan 31 (before the month is over), only the run is missing
    with time_machine.travel("2026-01-31 12:00Z", tick=False):
        recognize(day("2026-01-01"))
    assert checks(month("2026-01"))["recognition"] == (
        False,
        ["the recognition run has not run for January 2026 since the month ended"],
    )

    # When it runs again on Feb 1, the check passes; February's is not due yet
    with time_machine.travel("2026-02-01 02:00Z", tick=False):
        recognize(day("2026-01-01"))
    assert checks(month("2026-01"))["recognition"] == (True, [])
    assert checks(month("2026-02"))["recognition"][0] is False


def test_the_cash_check_lists_credit_balances_at_the_periods_end(finance):
    # Given 40.00 put on account on Jan 20 and 15.00 on Feb 3
    acme = CustomerFactory(name="Acme Corp")
    for amount, on in (("40.00", "2026-01-20"), ("15.00", "2026-02-03")):
        payment_record(
            customer=acme, amount=D(amount), currency="USD", received_on=day(on), auto_apply=False
        )
    january = month("2026-01")

    # Then January lists 40.00 (February's payment is after its end) and is not reviewed
    assert unapplied_cash(january) == [(acme, "USD", D("40.00"))]
    assert checks(january)["cash"] == (False, ["Acme Corp: $40.00"])
    assert checks(month("2026-02"))["cash"] == (False, ["Acme Corp: $55.00"])

    # When finance confirms the review, it passes, with who and when
    with time_machine.travel("2026-02-02 09:00Z", tick=False):
        january = reviewed(january, finance)
    check = next(c for c in close_checklist(january) if c.key == "cash")
    assert (check.ok, check.why) == (True, "Reviewed by fin on Feb 2, 2026.")


def test_close_is_refused_naming_the_failing_checks_and_changes_nothing(finance):
    # Given January billed and recognized, with a draft dated Jan 20 and the cash not reviewed
    customer = CustomerFactory(name="Acme Corp")
    subscription = subscribe(customer=customer, plan=hybrid_plan())
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    with time_machine.travel("2026-02-01 02:00Z", tick=False):
        contracts_sync()
        recognize(day("2026-01-01"))
    Invoice.objects.create(
        customer=customer, subscription=subscription, billing_date=day("2026-01-20"), currency="USD"
    )
    january = month("2026-01")
    before = snapshot(january)

    # When finance closes it
    with pytest.raises(ValidationError) as refused:
        period_close(period=january, by=finance)

    # Then the message names both failing checks, and the period is as it was
    assert str(refused.value.message) == (
        "January 2026 cannot close. No draft invoices: 1 draft invoice(s) dated in the period: "
        "finalize or delete them. Unapplied cash reviewed: No credit balance at the period's "
        "end: confirm the review."
    )
    assert snapshot(january) == before == ("open", None, None, 1)


def test_close_then_postings_dated_in_it_land_in_the_next_period(finance):
    # Given January with an invoice posted and the cash reviewed
    post("inv-1", "2026-01-15", "625.00")
    january = month("2026-01")
    reviewed(january, finance)

    # When finance closes it on Feb 2
    with time_machine.travel("2026-02-02 09:00Z", tick=False):
        period_close(period=january, by=finance)

    # Then January is closed by finance, and a document dated Jan 28 posts into February
    january.refresh_from_db()
    assert (january.status, january.closed_by, january.closed_at.isoformat()) == (
        "closed",
        finance,
        "2026-02-02T09:00:00+00:00",
    )
    late = post("inv-2", "2026-01-28", "25.00")
    assert (late.period.start, late.original_date) == (day("2026-02-01"), day("2026-01-28"))
    # And closing again is refused
    with pytest.raises(ValidationError, match="January 2026 is closed already"):
        period_close(period=january, by=finance)


def test_periods_close_in_order(finance):
    # Given January and February open, February's checks all passing
    january, february = month("2026-01"), month("2026-02")
    reviewed(february, finance)
    before = snapshot(february)

    # When finance closes February first: refused, nothing changes
    with pytest.raises(ValidationError, match="January 2026 is still open: periods close in order"):
        period_close(period=february, by=finance)
    assert snapshot(february) == before

    # When January closes first, February can
    reviewed(january, finance)
    period_close(period=january, by=finance)
    assert period_close(period=february, by=finance).status == "closed"


def test_only_the_latest_closed_period_reopens_with_a_reason(finance):
    # Given January and February closed
    january, february = month("2026-01"), month("2026-02")
    for period in (january, february):
        reviewed(period, finance)
        period_close(period=period, by=finance)

    # When finance reopens January: refused, February is the latest closed
    with pytest.raises(ValidationError, match="reopen February 2026 first"):
        period_reopen(period=january, by=finance, reason="Late invoice")
    # Without a reason: refused
    with pytest.raises(ValidationError, match="Say why the period reopens"):
        period_reopen(period=february, by=finance, reason="  ")
    assert snapshot(january)[0] == snapshot(february)[0] == "closed"

    # When finance reopens February with a reason
    period_reopen(period=february, by=finance, reason="Credit note for Acme dated Feb 27")

    # Then February is open with its reason; the cash review must be confirmed again; the
    # history keeps the close and the reopening, by whom and why
    february.refresh_from_db()
    assert (february.status, february.reopen_reason, february.cash_reviewed_at) == (
        "open",
        "Credit note for Acme dated Feb 27",
        None,
    )
    history = list(february.history.order_by("history_date"))
    assert [(h.status, h.history_user_id) for h in history[-2:]] == [
        ("closed", finance.pk),
        ("open", finance.pk),
    ]
    assert history[-1].history_change_reason == "Reopened: Credit note for Acme dated Feb 27"
    # And now January is still closed; February can close again after its review
    reviewed(february, finance)
    assert period_close(period=february, by=finance).status == "closed"


def test_an_open_periods_review_only(finance):
    january = month("2026-01")
    reviewed(january, finance)
    period_close(period=january, by=finance)
    with pytest.raises(ValidationError, match="January 2026 is closed: its review cannot change"):
        reviewed(january, finance)
