"""Revenue after the contract was signed, worked by hand to the cent (docs/revrec.md, "Credit
notes, renewals and usage not invoiced yet"): usage recognized before it is invoiced (Dr Unbilled
receivable, reversed on invoicing), credit notes changing the transaction price (cumulative
catch-up), renewals as new contracts, and the SSP price book in the allocation."""

from decimal import Decimal

import time_machine

from catalog.models import Charge, StandaloneSellingPrice
from core.money import exact_sum
from invoicing.corrections import credit_note_issue
from invoicing.models import Invoice
from invoicing.services import billing_run
from metering.services import events_ingest
from revrec.audit import audit
from revrec.models import Account, JournalEntry, RevenueContract, UsageAccrual
from revrec.postings import journal_sync
from revrec.recognition import contracts_sync, recognize
from revrec.selectors import account_balances
from subscriptions.changes import (
    subscription_cancel,
    subscription_renew,
    subscription_set_quantity,
)
from subscriptions.services import ItemSpec, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, MetricFactory, PlanFactory, day
from tests.revrec.ledger import schedule

D = Decimal
Role = Account.Role


def balance(role: str, on: str) -> Decimal:
    """The account's balance at the end of `on`, on its normal side (revenue and deferred
    revenue: credits − debits; receivables: debits − credits)."""
    return account_balances(as_of=day(on)).get((role, "USD"), D(0))


def at(moment: str):
    return time_machine.travel(moment, tick=False)


# --- usage recognized before it is invoiced -------------------------------------------------


def calls_subscription():
    """API calls at 0.20 each, billed monthly in arrears from Jan 15, 2026 (3 months)."""
    plan = PlanFactory()
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(code="api_calls"),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("0.20"),
        unit_name="call",
        default_quantity=D("0"),
    )
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_calls",
        start_date=day("2026-01-15"),
        term_months=3,
        items=[ItemSpec(charge=calls, quantity=D("0"))],
    )


def send(calls: int, on: str, first: int = 0) -> None:
    with at(f"{on} 12:00Z"):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": f"{on}-{n}",
                    "external_subscription_id": "sub_calls",
                    "code": "api_calls",
                    "timestamp": f"{on}T10:00:00Z",
                }
                for n in range(first, first + calls)
            ]
        )


def month_end(month: str, run_on: str) -> None:
    """The month-end run on `run_on`: contracts, recognition of `month`, the journal."""
    with at(f"{run_on} 02:00Z"):
        contracts_sync()
        recognize(day(month))
        journal_sync(today=day(run_on))


def bill(on: str) -> list[Invoice]:
    with at(f"{on} 01:00Z"):
        return billing_run().invoices


def test_usage_not_invoiced_at_month_end_is_accrued_then_reversed_on_invoicing(db):
    # Given 100 calls on Jan 20 (20.00), in the period Jan 15 – Feb 14 not invoiced by the
    # end of January
    subscription = calls_subscription()
    send(100, "2026-01-20")

    # When January is closed on Feb 1
    month_end("2026-01-01", "2026-02-01")

    # Then the 20.00 is accrued on Jan 31 (Dr Unbilled receivable / Cr Deferred revenue) and
    # recognized in January (Dr Deferred revenue / Cr Revenue): revenue 20.00, unbilled 20.00
    (accrual,) = UsageAccrual.objects.all()
    assert (accrual.period_start, accrual.period_end, accrual.amount) == (
        day("2026-01-15"),
        day("2026-02-15"),
        D("20.00"),
    )
    assert accrual.entry.entry_date == day("2026-01-31")
    assert balance(Role.UNBILLED_RECEIVABLE, "2026-01-31") == D("20.00")
    assert balance(Role.REVENUE, "2026-01-31") == D("20.00")
    assert balance(Role.DEFERRED_REVENUE, "2026-01-31") == D("0")

    # When 50 more calls come on Feb 5, the period is invoiced on Feb 15 (150 calls:
    # 30.00) and the journal posts it
    send(50, "2026-02-05")
    (invoice,) = bill("2026-02-15")
    assert invoice.subtotal == D("30.00")
    with at("2026-02-15 03:00Z"):
        journal_sync(today=day("2026-02-15"))

    # Then the accrual is reversed on the invoice's date: unbilled back to 0.00, the invoice's
    # 30.00 in deferred revenue less the 20.00 already recognized
    accrual.refresh_from_db()
    assert accrual.reversal.entry_date == day("2026-02-15")
    assert balance(Role.UNBILLED_RECEIVABLE, "2026-02-15") == D("0")
    assert balance(Role.DEFERRED_REVENUE, "2026-02-15") == D("10.00")

    # When 25 calls come on Feb 20 (5.00, period Feb 15 – Mar 14) and February is closed
    send(25, "2026-02-20")
    month_end("2026-02-01", "2026-03-01")

    # Then February recognizes the invoice's 30.00 (its Jan 15 – Feb 14, all of it by now) and
    # the new accrual 5.00, less January's 20.00: 15.00. Revenue 35.00 = 30.00 invoiced + 5.00
    # accrued; deferred revenue 0.00; unbilled 5.00
    (usage,) = RevenueContract.objects.get(subscription=subscription).obligations.all()
    assert schedule(usage) == {"2026-01": D("20.00"), "2026-02": D("15.00")}
    assert balance(Role.REVENUE, "2026-02-28") == D("35.00")
    assert balance(Role.UNBILLED_RECEIVABLE, "2026-02-28") == D("5.00")
    assert balance(Role.DEFERRED_REVENUE, "2026-02-28") == D("0")

    # When the period is invoiced (Mar 15), a usage credit note of 3.00 is issued on Mar 20,
    # and March is closed with no more usage
    (march,) = bill("2026-03-15")
    with at("2026-03-20 10:00Z"):
        line = march.lines.get(kind="usage")
        credit_note_issue(invoice=march, lines={line.pk: D("3.00")})
    month_end("2026-03-01", "2026-04-01")

    # Then March takes back the credited 3.00 (the Feb 15 – Mar 14 invoice equals its accrual,
    # and the Mar 15 – Apr 14 period has no usage): revenue 32.00 = 35.00 invoiced − 3.00
    assert schedule(usage)["2026-03"] == D("-3.00")
    assert balance(Role.REVENUE, "2026-03-31") == D("32.00")
    assert balance(Role.UNBILLED_RECEIVABLE, "2026-03-31") == D("0")
    assert balance(Role.DEFERRED_REVENUE, "2026-03-31") == D("0")


def test_an_accrual_is_replaced_by_the_next_months_for_a_period_still_not_invoiced(db):
    # Given a quarterly usage period Jan 1 – Mar 31 with 10 calls in January (2.00) and
    # 20 in February (4.00)
    plan = PlanFactory(billing_interval_months=3)
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(code="api_calls"),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("0.20"),
        default_quantity=D("0"),
    )
    subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_calls",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[ItemSpec(charge=calls, quantity=D("0"))],
    )
    send(10, "2026-01-10")
    send(20, "2026-02-10")

    # When January and February are closed
    month_end("2026-01-01", "2026-02-01")
    month_end("2026-02-01", "2026-03-01")

    # Then January accrued 2.00; February reversed it and accrued the period so far, 6.00:
    # unbilled 6.00, revenue 6.00 (2.00 in January, 4.00 in February)
    jan, feb = UsageAccrual.objects.order_by("month")
    assert (jan.amount, feb.amount) == (D("2.00"), D("6.00"))
    assert jan.reversal.entry_date == day("2026-02-28")
    assert balance(Role.UNBILLED_RECEIVABLE, "2026-02-28") == D("6.00")
    assert balance(Role.REVENUE, "2026-02-28") == D("6.00")
    assert schedule(UsageAccrual.objects.first().obligation) == {
        "2026-01": D("2.00"),
        "2026-02": D("4.00"),
    }


# --- credit notes ---------------------------------------------------------------------------


def seats_subscription():
    """10 seats × 30.00 a month, billed monthly in advance, Jan 1 – Mar 31, 2026: 900.00 over
    90 days, recognized 310.00 (Jan), 280.00 (Feb), 310.00 (Mar)."""
    plan = PlanFactory()
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("30"), unit_name="seat")
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_seats",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[ItemSpec(charge=seats, quantity=D("10"))],
    )


def test_a_credit_note_after_recognition_catches_up_and_reduces_the_rest(db):
    # Given January recognized (310.00) and February's invoice (300.00)
    subscription = seats_subscription()
    bill("2026-01-01")
    month_end("2026-01-01", "2026-02-01")
    (february,) = bill("2026-02-01")

    # When finance credits 90.00 of February's seats on Feb 15 (a service incident)
    with at("2026-02-15 10:00Z"):
        credit_note_issue(invoice=february, amount=D("90.00"), reason="Outage on Feb 3")
        contracts_sync()

    # Then the allocation is 810.00. Recognized by days it would be 279.00 (Jan), 252.00 (Feb),
    # 279.00 (Mar). January recognized 310.00, 31.00 too much: February takes 252.00 − 31.00 =
    # 221.00 (its days before Feb 15 kept 140.00, − 45.00 catch-up, + 126.00 for Feb 15 – 28),
    # March 279.00. The lines sum to 810.00
    (obligation,) = RevenueContract.objects.get(subscription=subscription).obligations.all()
    assert (obligation.allocated_amount, obligation.credited_amount) == (D("810.00"), D("90.00"))
    assert schedule(obligation) == {
        "2026-01": D("310.00"),
        "2026-02": D("221.00"),
        "2026-03": D("279.00"),
    }

    # And the journal: the credit note takes 90.00 off deferred revenue (Dr) and receivables
    month_end("2026-02-01", "2026-03-01")
    assert balance(Role.REVENUE, "2026-02-28") == D("531.00")
    # billed 600.00, credited 90.00, recognized 531.00: deferred revenue −21.00 (a debit)
    assert balance(Role.DEFERRED_REVENUE, "2026-02-28") == D("-21.00")


def test_a_credit_note_after_the_service_is_reversed_in_its_month(db):
    # Given the whole term recognized (900.00 by the end of March)
    subscription = seats_subscription()
    (january,) = bill("2026-01-01")
    bill("2026-02-01")
    bill("2026-03-01")
    for month, run_on in [("01", "02"), ("02", "03"), ("03", "04")]:
        month_end(f"2026-{month}-01", f"2026-{run_on}-01")

    # When 90.00 of January is credited on Apr 10
    with at("2026-04-10 10:00Z"):
        line = january.lines.get()
        credit_note_issue(invoice=january, lines={line.pk: D("90.00")})
    month_end("2026-04-01", "2026-05-01")

    # Then April reverses 90.00 of revenue (the posted months do not change)
    (obligation,) = RevenueContract.objects.get(subscription=subscription).obligations.all()
    assert schedule(obligation) == {
        "2026-01": D("310.00"),
        "2026-02": D("280.00"),
        "2026-03": D("310.00"),
        "2026-04": D("-90.00"),
    }
    entry = obligation.lines.get(month=day("2026-04-01")).entry
    assert [(x.account.role, x.debit, x.credit) for x in entry.lines.all()] == [
        (Role.REVENUE, D("90.00"), D("0")),
        (Role.DEFERRED_REVENUE, D("0"), D("90.00")),
    ]
    assert balance(Role.DEFERRED_REVENUE, "2026-04-30") == D("0")


# --- renewals -------------------------------------------------------------------------------


def test_a_renewal_is_a_new_contract_for_its_term(db):
    # Given 10 seats Jan – Mar, renewed on Mar 10 for Apr – Jun at 12 seats (360.00 a month)
    subscription = seats_subscription()
    contracts_sync()
    seats = subscription.items.get()
    with at("2026-03-10 10:00Z"):
        renewal = subscription_renew(
            subscription=subscription,
            term_months=3,
            items=[ItemSpec(charge=seats.charge, quantity=D("12"))],
            today=day("2026-03-10"),
        )

    # When the contracts are synced, and 15 seats from May 1 are agreed on Apr 20
    contracts_sync()
    subscription.refresh_from_db()
    with at("2026-04-20 10:00Z"):
        change = subscription_set_quantity(
            subscription=subscription,
            item=subscription.items.get(change=renewal),
            quantity=D("15"),
            effective_date=day("2026-05-01"),
            today=day("2026-04-20"),
        )
    contracts_sync()

    # Then the first contract is unchanged (900.00, Jan – Mar) and the renewal is its own
    # contract from Apr 1: 12 × 30.00 × 3 = 1,080.00 as signed, then + 3 × 30.00 for May and
    # June = 1,260.00 after the change (prospective, applied to the renewal only)
    first, second = RevenueContract.objects.filter(subscription=subscription).order_by("start")
    assert (first.renewal, first.start, first.end) == (None, day("2026-01-01"), day("2026-04-01"))
    assert (second.renewal, second.start, second.end) == (
        renewal,
        day("2026-04-01"),
        day("2026-07-01"),
    )
    (old,) = first.obligations.all()
    (new,) = second.obligations.all()
    assert (old.allocated_amount, old.last_change) == (D("900.00"), None)
    assert (new.allocated_amount, new.last_change) == (D("1260.00"), change)
    assert (new.service_start, new.service_end) == (day("2026-04-01"), day("2026-07-01"))
    assert exact_sum(new.lines.values_list("amount", flat=True)) == D("1260.00")
    # April keeps 12 seats' share of 1,080.00 by days (30 of 91 days: 356.04…); May and June
    # share the rest
    assert set(schedule(new)) == {"2026-04", "2026-05", "2026-06"}


# --- the SSP price book ---------------------------------------------------------------------


def test_the_allocation_uses_the_ssp_price_book_in_force_at_inception(db):
    # Given a platform fee listed 1,000.00 (sold at 800.00 a month) and seats listed 50.00, and
    # a price book: the platform fee at 80% of list; seats at 99.00 until Dec 31, 2025, then
    # 60.00 from Jan 1, 2026
    plan = PlanFactory()
    platform = ChargeFactory(plan=plan, name="Platform fee", unit_price=D("1000"))
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("50"), unit_name="seat")
    book = [
        (platform, "2025-01-01", None, None, D("80")),
        (seats, "2025-01-01", "2026-01-01", D("99"), None),
        (seats, "2026-01-01", None, D("60"), None),
    ]
    for charge, start, end, amount, percent in book:
        StandaloneSellingPrice.objects.create(
            plan=plan,
            charge_key=charge.key,
            currency="USD",
            effective_from=day(start),
            effective_to=day(end) if end else None,
            amount=amount,
            percent_of_list=percent,
        )
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_book",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[
            ItemSpec(charge=platform, quantity=D("1"), unit_price=D("800")),
            ItemSpec(charge=seats, quantity=D("10")),
        ],
    )

    # When the contract is made
    contracts_sync()

    # Then the SSPs for the term are 3 × 800.00 (80% of 1,000.00) and 3 × 10 × 60.00: 2,400.00
    # and 1,800.00; the price 3 × 800 + 3 × 500 = 3,900.00 is split 3900 × 2400/4200 =
    # 2,228.571… and 3900 × 1800/4200 = 1,671.428…: 2,228.57 and 1,671.43 (the cent left goes to
    # the larger remainder, .428…)
    fee, seat = RevenueContract.objects.get(subscription=subscription).obligations.order_by(
        "position"
    )
    assert [(o.ssp, o.fixed_consideration, o.allocated_amount) for o in (fee, seat)] == [
        (D("2400.00"), D("2400.00"), D("2228.57")),
        (D("1800.00"), D("1500.00"), D("1671.43")),
    ]


def test_the_journal_kinds_of_an_accrual_are_named_in_the_entries(db):
    # Given usage accrued at the end of January
    calls_subscription()
    send(5, "2026-01-20")
    month_end("2026-01-01", "2026-02-01")

    # Then the accrual entry says what it is and which subscription
    entry = JournalEntry.objects.get(kind="usage_accrual")
    assert entry.memo.startswith("Usage accrued Jan 15 – Jan 31, not invoiced yet: API calls")
    assert "sub_calls" in entry.memo


def test_the_audit_ties_unbilled_receivables_and_credited_allocations(db):
    # Given usage accrued at the end of January and a seats contract credited 90.00
    calls_subscription()
    send(5, "2026-01-20")
    month_end("2026-01-01", "2026-02-01")
    seats_subscription()
    (january,) = bill("2026-01-01")
    with at("2026-01-10 10:00Z"):
        credit_note_issue(invoice=january, amount=D("90.00"), reason="Outage")
    month_end("2026-01-01", "2026-02-01")

    # Then the audit finds nothing: Unbilled receivable 1.00 = the accrual standing, the
    # seats' allocation 810.00 = 900.00 fixed − 90.00 credited
    assert audit() == []

    # When the accrual is changed behind the services
    UsageAccrual.objects.update(amount=D("1.50"))

    # Then the tie-out names the customer and both figures
    (difference,) = audit()
    assert difference.check == "tie_out"
    assert "Unbilled receivable 1.00 in the journal, 1.50 from the usage accruals" in str(
        difference.message
    )


def test_an_accrual_is_reversed_by_the_invoice_of_a_period_a_cancellation_cut_short(db):
    # Given 100 calls accrued at the end of January (period Jan 15 – Feb 14, 20.00)
    subscription = calls_subscription()
    send(100, "2026-01-20")
    month_end("2026-01-01", "2026-02-01")

    # When the subscription is cancelled from Feb 5 and its last usage invoiced that day
    with at("2026-02-03 10:00Z"):
        subscription_cancel(
            subscription=subscription,
            reason="Moving to another vendor",
            effective_date=day("2026-02-05"),
            today=day("2026-02-03"),
        )
    (last,) = bill("2026-02-05")
    assert (last.billing_date, last.subtotal) == (day("2026-02-05"), D("20.00"))
    with at("2026-02-05 03:00Z"):
        journal_sync(today=day("2026-02-05"))

    # Then the accrual (made for the period up to Feb 15) is reversed by that invoice
    (accrual,) = UsageAccrual.objects.all()
    assert accrual.reversal.entry_date == day("2026-02-05")
    assert balance(Role.UNBILLED_RECEIVABLE, "2026-02-05") == D("0")
