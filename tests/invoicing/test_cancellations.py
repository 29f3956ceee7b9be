"""A cancellation: the unused prepaid time credited at once, a final invoice for the usage up to the
cancellation date, the prepaid credits forfeited or refunded, and nothing settled twice."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection

from core.errors import Conflict
from invoicing.models import CreditNote, Invoice, NumberSeries
from invoicing.services import billing_run, subscription_bill
from subscriptions.changes import items_in_force, subscription_cancel, subscription_set_quantity
from subscriptions.models import PrepaidCredit, Subscription, SubscriptionChange
from subscriptions.services import CreditSpec, ItemSpec, subscription_create
from tests.factories import CustomerFactory, day, hybrid_plan
from tests.invoicing.test_billing import calls, lines_of


def bill(on: str) -> list[Invoice]:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        result = billing_run()
    assert result.failed == {}
    return result.invoices


def plan_with(*, trial_days: int = 0, call_price: str = "0.01"):
    """Platform fee 500.00 + 12 seats at 30.00 in advance, API calls in arrears."""
    return hybrid_plan(
        platform_fee="500",
        seat_price="30",
        call_price=call_price,
        seats="12",
        trial_days=trial_days,
    )


def seats_subscription(**plan_options) -> Subscription:
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan_with(**plan_options),
        external_id="sub_acme",
        start_date=day("2026-01-01"),
        term_months=12,
    )


def cancel(
    subscription, *, on: str, effective: str | None, reason="Moving to a competitor", by=None
):
    """Cancel as the admin does: the change, then billing at once (the credit note)."""
    with time_machine.travel(f"{on} 10:00Z", tick=False):
        change = subscription_cancel(
            subscription=subscription,
            reason=reason,
            effective_date=day(effective) if effective else None,
            by=by,
            source="admin",
            today=day(on),
        )
        made = subscription_bill(subscription=subscription, today=day(on))
    return change, made


def notes() -> list[tuple]:
    return [
        (note.number, note.invoice.number, note.reason, note.total)
        for note in CreditNote.objects.order_by("number")
    ]


def note_lines(note: CreditNote) -> list[tuple]:
    return [(line.description, line.amount) for line in note.lines.all()]


def test_cancelled_mid_period_credits_the_unused_days_and_bills_the_usage_up_to_the_date(db):
    # Given 500.00 platform fee + 12 seats × 30.00, invoiced in advance on Jan 1 (860.00)
    user = get_user_model().objects.create_user("fran", password="x")
    subscription = seats_subscription()
    (advance,) = bill("2026-01-01")
    calls(subscription, 100, "2026-01-10")
    calls(subscription, 40, "2026-01-20")  # after the service ended: never billed

    # When it is cancelled on Jan 10 from Jan 16 (16 of January's 31 days unused)
    change, made = cancel(subscription, on="2026-01-10", effective="2026-01-16", by=user)

    # Then a credit note at once: 500 × 16/31 = 258.06 and 360 × 16/31 = 185.81
    assert made == []
    assert notes() == [
        (
            "CN-000001",
            "INV-000001",
            "Cancelled from Jan 16, 2026: unused time of Jan 1 – Jan 31, 2026",
            Decimal("443.87"),
        )
    ]
    note = CreditNote.objects.get()
    assert note_lines(note) == [("Platform fee", Decimal("258.06")), ("Seats", Decimal("185.81"))]
    assert note.change == change and note.issued_by == user
    assert note.issue_date == day("2026-01-10")

    # And the final invoice on Jan 16 bills the usage of Jan 1 – Jan 15, no fee
    (final,) = bill("2026-01-16")
    assert final.billing_date == day("2026-01-16")
    assert lines_of(final) == [("usage", "API calls", Decimal("100"), Decimal("1.00"))]
    usage = final.lines.get()
    assert (usage.period_start, usage.period_end) == (day("2026-01-01"), day("2026-01-16"))

    # And nothing more, ever: no invoice, no second credit note (numbering has no gap)
    for on in ["2026-02-01", "2026-02-20", "2026-03-01", "2026-06-01", "2027-01-01"]:
        assert bill(on) == []
    assert list(Invoice.objects.order_by("number").values_list("number", flat=True)) == [
        "INV-000001",
        "INV-000002",
    ]
    assert CreditNote.objects.count() == 1
    advance.refresh_from_db()
    assert advance.credited_amount == Decimal("443.87")

    # And the status and history say who cancelled, when and why
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.canceled_on == day("2026-01-16")
    assert subscription.canceled_by == user
    assert subscription.canceled_at == dt.datetime(2026, 1, 10, 10, tzinfo=dt.UTC)
    assert subscription.cancel_reason == "Moving to a competitor"
    assert subscription.end_date == day("2026-01-16")
    assert (change.kind, change.effective_date, change.by, change.reason, change.source) == (
        SubscriptionChange.Kind.CANCELLATION,
        day("2026-01-16"),
        user,
        "Moving to a competitor",
        "admin",
    )
    assert change.description == "Cancelled from Jan 16, 2026"
    assert set(subscription.items.values_list("ends_on", flat=True)) == {day("2026-01-16")}
    assert set(subscription.items.values_list("ended_by", flat=True)) == {change.pk}


def test_cancelled_at_the_end_of_the_period_credits_nothing_and_bills_only_the_last_usage(db):
    subscription = seats_subscription()
    bill("2026-01-01")
    calls(subscription, 250, "2026-01-20")

    # When cancelled on Jan 10 without a date: at the end of the period in progress
    change, _ = cancel(subscription, on="2026-01-10", effective=None)

    # Then no credit note; the Feb 1 invoice bills January's usage, no fee; nothing after
    assert change.effective_date == day("2026-02-01")
    assert CreditNote.objects.count() == 0
    (last,) = bill("2026-02-01")
    assert lines_of(last) == [("usage", "API calls", Decimal("250"), Decimal("2.50"))]
    for on in ["2026-03-01", "2026-03-08", "2026-04-01", "2027-01-01"]:
        assert bill(on) == []
    assert CreditNote.objects.count() == 0
    assert list(Invoice.objects.order_by("number").values_list("number", "billing_date")) == [
        ("INV-000001", day("2026-01-01")),
        ("INV-000002", day("2026-02-01")),
    ]


def test_cancelled_during_the_trial_nothing_is_ever_billed(db):
    # Given a 14-day trial from Jan 1 (billing would begin on Jan 15)
    subscription = seats_subscription(trial_days=14)
    calls(subscription, 500, "2026-01-03")

    # When it is cancelled on Jan 5 from Jan 10
    cancel(subscription, on="2026-01-05", effective="2026-01-10")

    # Then billing through the whole term bills nothing, and credits nothing
    on = day("2026-01-01")
    while on <= day("2027-03-01"):
        assert bill(on.isoformat()) == []
        on += dt.timedelta(days=7)
    assert Invoice.objects.count() == 0 and CreditNote.objects.count() == 0
    assert subscription.billing_periods.count() == 0


def credit_subscription(rule: str) -> Subscription:
    """Platform fee 500.00 a month + a 1,000.00 prepaid credit (billed once, on the first
    invoice), API calls at 1.00 drawn from the credit."""
    plan = plan_with(call_price="1.00")
    platform, _, api_calls = plan.charges.order_by("position")
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_credit",
        start_date=day("2026-01-01"),
        term_months=12,
        items=[
            ItemSpec(charge=platform, quantity=Decimal("1")),
            ItemSpec(charge=api_calls, quantity=Decimal("0")),
            ItemSpec(
                charge=None,
                quantity=Decimal("1"),
                name="Prepaid credit",
                pricing={"model": "flat", "unit_price": "1000"},
                one_time=True,
            ),
        ],
        credits=[CreditSpec(amount=Decimal("1000"), note="Prepaid credit (Q-1)")],
    )
    Subscription.objects.filter(pk=subscription.pk).update(unused_credit_on_cancel=rule)
    subscription.refresh_from_db()
    return subscription


def _cancel_with_credit(rule: str):
    subscription = credit_subscription(rule)
    (first,) = bill("2026-01-01")
    assert first.total == Decimal("1500.00")
    calls(subscription, 300, "2026-01-05")
    cancel(subscription, on="2026-01-10", effective="2026-01-16")
    # The credit is not settled before the final invoice: usage up to Jan 16 draws on it first
    assert PrepaidCredit.objects.get().remaining == Decimal("1000")
    (final,) = bill("2026-01-16")
    assert lines_of(final) == [
        ("usage", "API calls", Decimal("300"), Decimal("300.00")),
        ("credit", "Prepaid credit applied (700 USD left)", Decimal("0"), Decimal("-300.00")),
    ]
    return subscription


def test_cancelled_with_forfeit_the_prepaid_credit_left_is_closed(db):
    _cancel_with_credit(Subscription.UnusedCredit.FORFEIT)

    credit = PrepaidCredit.objects.get()
    assert credit.remaining == Decimal("0")
    assert credit.note == (
        "Prepaid credit (Q-1); $700.00 closed: forfeited, subscription cancelled from Jan 16, 2026"
    )
    # Only the unused time of the platform fee is credited (not the one-time prepaid credit)
    assert notes() == [
        (
            "CN-000001",
            "INV-000001",
            "Cancelled from Jan 16, 2026: unused time of Jan 1 – Jan 31, 2026",
            Decimal("258.06"),
        )
    ]
    assert bill("2026-02-20") == [] and CreditNote.objects.count() == 1


def test_cancelled_with_refund_the_prepaid_credit_left_is_credited_on_the_first_invoice(db):
    _cancel_with_credit(Subscription.UnusedCredit.REFUND)

    assert notes() == [
        (
            "CN-000001",
            "INV-000001",
            "Cancelled from Jan 16, 2026: unused time of Jan 1 – Jan 31, 2026",
            Decimal("258.06"),
        ),
        ("CN-000002", "INV-000001", "Unused prepaid credit refunded", Decimal("700.00")),
    ]
    refund = CreditNote.objects.get(number="CN-000002")
    assert refund.kind == CreditNote.Kind.AMOUNT and refund.change.kind == "cancellation"
    credit = PrepaidCredit.objects.get()
    assert credit.remaining == Decimal("0")
    assert credit.note.endswith("$700.00 closed: $700.00 refunded by credit note CN-000002")
    first = Invoice.objects.get(number="INV-000001")
    assert first.credited_amount == Decimal("958.06")

    # Idempotent: billing again settles nothing twice
    for on in ["2026-01-16", "2026-01-17", "2026-02-20", "2026-03-01"]:
        assert bill(on) == []
    assert CreditNote.objects.count() == 2


def test_settling_twice_issues_one_credit_note(db):
    subscription = seats_subscription()
    bill("2026-01-01")
    cancel(subscription, on="2026-01-10", effective="2026-01-16")

    with time_machine.travel("2026-01-10 11:00Z", tick=False):
        assert subscription_bill(subscription=subscription, today=day("2026-01-10")) == []
    bill("2026-01-10")
    bill("2026-01-16")
    bill("2026-01-16")

    assert [n for n, *_ in notes()] == ["CN-000001"]


def test_a_cancelled_subscription_refuses_changes_and_a_second_cancellation(db):
    subscription = seats_subscription()
    bill("2026-01-01")
    cancel(subscription, on="2026-01-10", effective="2026-01-16")
    seats = next(i for i in items_in_force(subscription, day("2026-01-10")) if i.name == "Seats")

    with pytest.raises(Conflict, match="sub_acme is canceled: only a live subscription"):
        subscription_set_quantity(
            subscription=subscription,
            item=seats,
            quantity=Decimal("20"),
            effective_date=day("2026-01-12"),
            today=day("2026-01-10"),
        )
    with pytest.raises(Conflict, match="only a live subscription"):
        subscription_cancel(subscription=subscription, reason="again", today=day("2026-01-11"))
    assert subscription.changes.count() == 1


def _at_once(*jobs) -> list[str]:
    """Run the jobs in threads started together (each on its own connection)."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []

    def run(job) -> None:
        try:
            # Connect before any thread travels in time: a connection's timeout read across a
            # travel's end would jump by months
            connection.ensure_connection()
            barrier.wait(timeout=10)
            outcomes.append(job())
        except Exception as exc:
            outcomes.append(getattr(exc, "message", None) or repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_billings_at_once_settle_a_cancellation_once():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    subscription = seats_subscription()
    bill("2026-01-01")
    with time_machine.travel("2026-01-10 10:00Z", tick=False):
        subscription_cancel(
            subscription=subscription,
            reason="Budget",
            effective_date=day("2026-01-16"),
            today=day("2026-01-10"),
        )

    def settle() -> str:
        mine = Subscription.objects.get(pk=subscription.pk)
        with time_machine.travel("2026-01-16 01:00Z", tick=False):
            return str(len(subscription_bill(subscription=mine, today=day("2026-01-16"))))

    outcomes = _at_once(settle, settle)

    # One final invoice, one credit note, no gap in either series
    assert sorted(outcomes) == ["0", "1"]
    assert [n for n, *_ in notes()] == ["CN-000001"]
    assert list(Invoice.objects.order_by("number").values_list("number", flat=True)) == [
        "INV-000001",
        "INV-000002",
    ]
    assert NumberSeries.objects.get(name="CN").next_value == 2


@pytest.mark.django_db(transaction=True)
def test_a_seat_change_and_a_cancellation_at_once_one_after_the_other():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    subscription = seats_subscription()
    bill("2026-01-01")
    seats = subscription.items.get(name="Seats")

    def change() -> str:
        with time_machine.travel("2026-01-10 10:00Z", tick=False):
            subscription_set_quantity(
                subscription=Subscription.objects.get(pk=subscription.pk),
                item=seats,
                quantity=Decimal("20"),
                effective_date=day("2026-01-12"),
                expected_revision=0,
                today=day("2026-01-10"),
            )
        return "changed"

    def cancelled() -> str:
        with time_machine.travel("2026-01-10 10:00Z", tick=False):
            subscription_cancel(
                subscription=Subscription.objects.get(pk=subscription.pk),
                reason="Budget",
                effective_date=day("2026-01-16"),
                today=day("2026-01-10"),
            )
        return "cancelled"

    outcomes = _at_once(change, cancelled)

    # Either the change came first (then the cancellation ends its new version too), or the
    # cancellation did (then the change is refused): never half of each
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    if "changed" in outcomes:
        assert sorted(outcomes) == ["cancelled", "changed"]
        assert subscription.revision == 2
        seats_versions = subscription.items.filter(name="Seats").order_by("id")
        assert list(seats_versions.values_list("ends_on", "quantity")) == [
            (day("2026-01-12"), Decimal("12")),
            (day("2026-01-16"), Decimal("20")),
        ]
    else:
        # The cancellation raised the revision the change was drafted on (0): refused
        (refused,) = [o for o in outcomes if o != "cancelled"]
        assert refused.startswith("Subscription sub_acme changed since this was drafted")
        assert subscription.revision == 1


def _seats_change(subscription, *, invoice_now: bool) -> None:
    seats = subscription.items.get(name="Seats")
    with time_machine.travel("2026-01-10 09:00Z", tick=False):
        subscription_set_quantity(
            subscription=subscription,
            item=seats,
            quantity=Decimal("20"),
            effective_date=day("2026-01-12"),
            invoice_now=invoice_now,
            today=day("2026-01-10"),
        )
        subscription_bill(subscription=subscription, today=day("2026-01-10"))


def test_a_seat_change_invoiced_at_once_then_a_cancellation_credits_each_day_once(db):
    # Given Jan 1: 860.00; Jan 10: 12 → 20 seats from Jan 12, invoiced at once:
    # − 12 × 30.00 × 20/31 = −232.26, + 20 × 30.00 × 20/31 = 387.10: INV-000002 = 154.84
    subscription = seats_subscription()
    bill("2026-01-01")
    _seats_change(subscription, invoice_now=True)
    assert Invoice.objects.get(number="INV-000002").total == Decimal("154.84")
    calls(subscription, 100, "2026-01-13")

    # When it is cancelled from Jan 16
    cancel(subscription, on="2026-01-10", effective="2026-01-16")

    # Then INV-000001 gives back Jan 16 – 31 of what it billed: 258.06 + 185.81; INV-000002 the
    # net of its lines after Jan 16: 387.10 × 16/20 = 309.68 − 232.26 × 16/20 = 185.81 → 123.87
    # (the 12 seats' Jan 16 – 31 was already given back once: it is not given back twice).
    # Seats paid in all: 360.00 − 185.81 + 154.84 − 123.87 = 205.16 = (12 × 11 + 20 × 4) × 30/31
    assert [(n, inv, total) for n, inv, _, total in notes()] == [
        ("CN-000001", "INV-000001", Decimal("443.87")),
        ("CN-000002", "INV-000002", Decimal("123.87")),
    ]
    assert note_lines(CreditNote.objects.get(number="CN-000002")) == [
        ("Remaining time on 20 × Seats from Jan 12", Decimal("123.87"))
    ]
    (final,) = bill("2026-01-16")
    assert lines_of(final) == [("usage", "API calls", Decimal("100"), Decimal("1.00"))]
    assert bill("2026-02-01") == [] and CreditNote.objects.count() == 2


def test_a_seat_change_on_the_next_invoice_then_a_cancellation_prorates_up_to_the_end(db):
    subscription = seats_subscription()
    bill("2026-01-01")
    _seats_change(subscription, invoice_now=False)

    cancel(subscription, on="2026-01-10", effective="2026-01-16")
    (final,) = bill("2026-01-16")

    # The credit note gives back Jan 16 – 31 as billed on Jan 1; the final invoice prorates the
    # change up to the cancellation only: − 12 × 30.00 × 4/31 = −46.45, + 20 × 30.00 × 4/31 =
    # 77.42. Seats paid: 360.00 − 185.81 − 46.45 + 77.42 = 205.16, as above.
    assert [(n, total) for n, _, _, total in notes()] == [("CN-000001", Decimal("443.87"))]
    assert sorted((kind, amount) for kind, _, _, amount in lines_of(final)) == [
        ("proration", Decimal("-46.45")),
        ("proration", Decimal("77.42")),
        ("usage", Decimal("0")),
    ]
    assert final.total == Decimal("30.97")


def test_cancelled_after_a_write_off_credits_only_what_was_not_written_off(db):
    # Given the Jan 1 invoice of 860.00, 400.00 paid and the 460.00 left written off
    from receivables.services import invoice_write_off, payment_record

    subscription = seats_subscription()
    (advance,) = bill("2026-01-01")
    payment_record(
        customer=subscription.customer,
        amount=Decimal("400.00"),
        currency="USD",
        received_on=day("2026-01-03"),
        allocations={advance: Decimal("400.00")},
    )
    with time_machine.travel("2026-01-05 10:00Z", tick=False):
        invoice_write_off(invoice=advance, reason="Uncollectible", on=day("2026-01-05"))

    # When it is cancelled on Jan 10 from Jan 16 (443.87 of unused time)
    cancel(subscription, on="2026-01-10", effective="2026-01-16")

    # Then the credit note gives back only the 400.00 paid (to the credit balance): the
    # platform fee's 258.06, then 141.94 of the seats' 185.81
    (note,) = CreditNote.objects.all()
    assert note_lines(note) == [("Platform fee", Decimal("258.06")), ("Seats", Decimal("141.94"))]
    # And the billing runs after it bill the last usage and never fail (bill() checks)
    assert [i.billing_date for i in bill("2026-01-16")] == [day("2026-01-16")]
    assert bill("2026-02-01") == []
