"""Property: for a generated year of activity, built day by day through the real services only,
the deferred revenue roll-forward ties to the journal in every period, the books balance, every
obligation's recognition lines sum exactly to its allocation, closed months stay as they were
closed, and the ledger audit finds no difference.

Each example draws a handful of customers, each with one subscription of twelve months: monthly
plans (platform fee + seats in advance, tokens in arrears) and annual plans billed up front
(platform fee + seats), some with a one-time implementation fee, some taxed; starts on month
ends, Feb 29 in a leap year, mid-month. Then, day by day over the year (2027 or the leap 2028)
and into the next January: seat changes and cancellations mid-term (subscriptions.changes), usage
events (metering.services.events_ingest), billing runs (invoicing.services.billing_run, the
clock moved to the day), goodwill credit notes (invoicing.corrections), payments by each
customer's habit — on time, in two parts, overpaid then refunded, bounced then paid again, never
(written off) — and a payment recorded after its month closed, dated in it
(receivables.services). On each month's first day: contracts_sync, recognize(last month),
journal_sync, and the ties below; months 1..k close on the 5th of the next month (the checklist
of revrec.close must pass: billing run, no drafts, recognition posted, cash reviewed).

The test reads revrec only through its public functions (contracts_sync, recognize,
journal_sync, deferred_rollforward, account_balances, trial_balance, audit), so it holds whatever
the recognition rules become. Examples are few, as each is a year of documents (about 5 s), and
each is deterministic given what was drawn; a failing one is printed whole ("drawn: …"), not
shrunk. Findings that are bugs outside this test are kept as their own small tests at the end.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import transaction
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

from catalog.models import Charge
from core.money import exact_sum, round_money
from core.periods import add_months
from customers.models import Customer
from invoicing.balance import credit_balance
from invoicing.corrections import credit_note_issue
from invoicing.models import CreditNote, Invoice
from invoicing.services import billing_run
from metering.services import events_ingest
from receivables.models import Payment
from receivables.services import invoice_write_off, payment_record, payment_reverse, refund_record
from revrec.audit import audit
from revrec.close import period_cash_review, period_close
from revrec.ledger import period_for
from revrec.models import (
    AccountingPeriod,
    JournalLine,
    PerformanceObligation,
    RecognitionLine,
    UsageAccrual,
)
from revrec.postings import journal_sync
from revrec.recognition import contracts_sync, recognize
from revrec.selectors import account_balances, deferred_rollforward, trial_balance
from subscriptions.changes import items_in_force, subscription_cancel, subscription_set_quantity
from subscriptions.models import BillingPeriod, Subscription
from subscriptions.services import ItemSpec, subscription_create
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    TokensMetricFactory,
    UserFactory,
)
from tests.receivables import cash

D = Decimal
DEFERRED = "deferred_revenue"
HABITS = ("on_time", "in_two_parts", "overpays", "bounces", "never")


# --- what an example draws --------------------------------------------------------------------


@dataclass(frozen=True)
class Deal:
    """One customer and its subscription, and what happens to them during the year."""

    annual: bool
    start: int  # days from Jan 1 (see START_DAYS)
    seats: int
    implementation: int  # a one-time fee (0: none)
    taxed: bool
    habit: str
    seat_change: tuple[int, int] | None  # (days after the start, new seats)
    cancel_after: int | None  # days after the start
    credit: tuple[int, int, int] | None  # (n-th invoice, percent of its subtotal, days after)
    tokens: int  # a usage event's size


def start_days(year: int) -> list[dt.date]:
    """Starts on the year's first day, month ends, Feb 29 (a leap year) or 28, mid-month."""
    feb_last = dt.date(year, 3, 1) - dt.timedelta(days=1)
    return [
        dt.date(year, 1, 1),
        dt.date(year, 1, 15),
        dt.date(year, 1, 31),
        feb_last,
        dt.date(year, 3, 31),
        dt.date(year, 4, 30),
        dt.date(year, 5, 17),
    ]


@st.composite
def deals(draw, *, annual: bool) -> Deal:
    habit = draw(st.sampled_from(HABITS))
    # Not drawn: a cancellation after the prepaid invoice was written off. Its credit note for
    # the unused time is refused ("has … written off: a credit note can give back at most
    # $0.00") and every billing run fails for the subscription from then on (invoicing).
    cancels = st.none() if habit == "never" else st.none() | st.integers(60, 300)
    return Deal(
        annual=annual,
        start=draw(st.integers(0, 6)),
        seats=draw(st.integers(1, 25)),
        implementation=draw(st.sampled_from([0, 0, 1500, 2499])),
        taxed=draw(st.booleans()),
        habit=habit,
        seat_change=draw(
            st.none() | st.tuples(st.integers(20, 200), st.integers(1, 40))  # up or down
        ),
        cancel_after=draw(cancels),
        credit=draw(
            st.none() | st.tuples(st.integers(0, 3), st.integers(5, 60), st.integers(1, 20))
        ),
        tokens=draw(st.integers(1, 50_000)),
    )


@st.composite
def years(draw) -> dict:
    """Two monthly customers, one annual, and maybe a fourth of either kind."""
    fourth = draw(st.sampled_from([None, False, True]))
    return {
        "year": draw(st.sampled_from([2027, 2028])),
        "deals": [
            draw(deals(annual=False)),
            draw(deals(annual=False)),
            draw(deals(annual=True)),
            *([] if fourth is None else [draw(deals(annual=fourth))]),
        ],
        "closed_months": draw(st.integers(0, 6)),  # months 1..k close
        "late_payment": draw(st.booleans()),  # a payment recorded after its month closed
    }


# --- the world: plans, customers, subscriptions ---------------------------------------------


def at(day: dt.date, hour: int, minute: int = 0):
    moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)
    return time_machine.travel(moment, tick=False)


def plans():
    """Monthly: platform 300.00 + seats 24.99 in advance, tokens at 0.0015 in arrears.
    Annual: platform 3,600.00 + seats 299.00 a year, billed up front."""
    tokens = TokensMetricFactory()
    monthly = PlanFactory(billing_interval_months=1)
    ChargeFactory(plan=monthly, name="Platform fee", unit_price=D("300"), position=0)
    ChargeFactory(plan=monthly, name="Seats", unit_price=D("24.99"), unit_name="seat", position=1)
    ChargeFactory(
        plan=monthly,
        name="Tokens",
        metric=tokens,
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("0.0015"),
        unit_name="token",
        default_quantity=D("0"),
        position=2,
    )
    annual = PlanFactory(billing_interval_months=12)
    ChargeFactory(plan=annual, name="Platform fee", unit_price=D("3600"), position=0)
    ChargeFactory(plan=annual, name="Seats", unit_price=D("299"), unit_name="seat", position=1)
    return monthly, annual


def subscribe(n: int, deal: Deal, year: int, monthly, annual) -> Subscription:
    plan = annual if deal.annual else monthly
    customer = CustomerFactory(name=f"Customer {n}", tax_rate=D("8.25") if deal.taxed else D("0"))
    items = []
    for charge in plan.charges.order_by("position"):
        quantity = D(deal.seats) if charge.name == "Seats" else charge.default_quantity
        items.append(ItemSpec(charge=charge, quantity=quantity))
    if deal.implementation:
        items.append(
            ItemSpec(
                charge=None,
                quantity=D("1"),
                name="Implementation",
                pricing={"model": "flat", "unit_price": str(deal.implementation)},
                one_time=True,
            )
        )
    start = start_days(year)[deal.start]
    with at(start, 0, 1):
        return subscription_create(
            customer=customer,
            plan=plan,
            external_id=f"sub_gen_{n}",
            start_date=start,
            term_months=12,
            items=items,
        )


# --- the ties ----------------------------------------------------------------------------------


def last_day(period: AccountingPeriod) -> dt.date:
    return period.end - dt.timedelta(days=1)


def assert_books_tie(*, full: bool = True) -> list:
    """The roll-forward's ties for every period so far (and, `full`, the trial balances, each
    obligation's lines against its allocation and the audit); returns the roll-forward (USD)."""
    rows = [row for row in deferred_rollforward() if row.currency == "USD"]
    for row in rows:
        # opening + billed − credited − recognized = closing
        assert row.opening + row.billed - row.credited - row.recognized == row.closing, row
        # the closing is the Deferred revenue account's balance on the period's last day
        balance = account_balances(as_of=last_day(row.period)).get((DEFERRED, "USD"), D(0))
        assert row.closing == balance, (f"{row.period}", row.closing, balance)
    for previous, row in zip(rows, rows[1:], strict=False):
        assert row.opening == previous.closing  # it chains
        assert row.period.start == previous.period.end  # no month left out
    if not full:
        return rows
    for row in rows:
        for book in trial_balance(row.period):
            assert book.debit == book.credit, (f"{row.period}", book.debit, book.credit)
    lines = JournalLine.objects.values_list("debit", "credit")
    assert exact_sum(d for d, _ in lines) == exact_sum(c for _, c in lines)
    recognized: dict[int, list] = {}
    for obligation_id, amount in RecognitionLine.objects.values_list("obligation_id", "amount"):
        recognized.setdefault(obligation_id, []).append(amount)
    for obligation in PerformanceObligation.objects.select_related("contract__subscription"):
        lines_sum = exact_sum(recognized.get(obligation.pk, []))
        assert lines_sum == obligation.allocated_amount, (
            obligation.description,
            obligation.contract.subscription.external_id,
            obligation.allocated_amount,
            lines_sum,
        )
    assert [str(d) for d in audit()] == []
    return rows


def assert_ended_contracts_recognized_what_they_billed(year: "Year") -> None:
    """A subscription cancelled during the year without a goodwill credit (nor a seat change):
    its contract has
    recognized, in all, exactly what its invoices billed less its credit notes (the unused time
    credited on cancellation) — revrec measured from the contract, billing from the schedule,
    the same figures."""
    for sub, deal in zip(year.subs, year.deals, strict=True):
        sub.refresh_from_db()
        if deal.credit is not None or sub.canceled_on is None:
            continue
        if deal.seat_change is not None:
            # changed, then cancelled: a cent apart today, see
            # test_an_annual_upgrade_then_cancellation_recognizes_what_was_billed_net
            continue
        invoices = Invoice.objects.filter(subscription=sub).exclude(status=Invoice.Status.DRAFT)
        billed = exact_sum(invoices.values_list("subtotal", flat=True))
        credited = exact_sum(
            CreditNote.objects.filter(invoice__subscription=sub).values_list("subtotal", flat=True)
        )
        recognized = exact_sum(
            RecognitionLine.objects.filter(obligation__contract__subscription=sub)
            .exclude(entry=None)
            .values_list("amount", flat=True)
        )
        assert recognized == billed - credited, (sub.external_id, billed, credited, recognized)


def closed_snapshot(period: AccountingPeriod) -> tuple:
    return (
        sorted(
            JournalLine.objects.filter(entry__period=period).values_list(
                "id", "account_id", "debit", "credit"
            )
        ),
        AccountingPeriod.objects.get(pk=period.pk).status,
    )


# --- the year, day by day ----------------------------------------------------------------------


class Year:
    def __init__(self, drawn: dict):
        self.year = drawn["year"]
        self.deals = drawn["deals"]
        self.closed_months = drawn["closed_months"]
        self.late_payment = drawn["late_payment"]
        self.finance = UserFactory(username="fin", is_staff=True)
        self.finance.groups.add(Group.objects.get(name="Finance"))
        monthly, annual = plans()
        self.subs = [
            subscribe(n, deal, self.year, monthly, annual) for n, deal in enumerate(self.deals)
        ]
        self.plans: dict[int, list] = {}  # invoice id → [(day, action)]
        self.billed: dict[int, list] = {}  # subscription id → its invoices billing made
        self.credits: dict[dt.date, tuple] = {}  # day → (invoice id, percent credited)
        self.bounds: set | None = None  # the schedules' billing dates
        self.changed: set = set()  # the days a contract changed
        self.closed: dict[int, tuple] = {}  # period id → snapshot at close
        self.closed_rows: dict[int, list] = {}  # period id → its roll-forward rows at close

    def run(self) -> None:
        day = dt.date(self.year, 1, 1)
        end = dt.date(self.year + 1, 1, 6)
        while day <= end:
            self.change_contracts(day)
            if self.billing_day(day):
                with at(day, 1):
                    result = billing_run(today=day)
                assert result.failed == {}, result.failed
                for invoice in result.invoices:
                    self.plan_collection(invoice, day)
                    self.plan_credit(invoice)
            self.usage(day)
            self.credit_notes(day)
            self.collect(day)
            if day.day == 1:
                self.month_end(day)
            if day.day == 5:
                self.close(day)
            if day.day == 6:
                self.pay_late(day)
            day += dt.timedelta(days=1)
        with at(end, 23, 30):
            journal_sync(today=end)

    # contracts: a seat change and a cancellation, in the morning, before billing
    def change_contracts(self, day: dt.date) -> None:
        for sub, deal in zip(self.subs, self.deals, strict=True):
            change_day = deal.seat_change and sub.start_date + dt.timedelta(deal.seat_change[0])
            cancel_day = deal.cancel_after and sub.start_date + dt.timedelta(deal.cancel_after)
            if day not in (change_day, cancel_day):
                continue
            sub.refresh_from_db()
            if sub.status != Subscription.Status.ACTIVE or day >= sub.end_date:
                continue
            self.bounds = None
            self.changed.add(day)
            if day == change_day:
                seats = next(i for i in items_in_force(sub, day) if i.name == "Seats")
                if seats.quantity != deal.seat_change[1]:
                    with at(day, 0, 30):
                        subscription_set_quantity(
                            subscription=sub,
                            item=seats,
                            quantity=D(deal.seat_change[1]),
                            effective_date=day,
                            invoice_now=deal.annual,  # an annual upgrade is invoiced at once
                            today=day,
                        )
            if day == cancel_day:
                with at(day, 0, 40):
                    subscription_cancel(
                        subscription=sub, reason="Budget cut", effective_date=day, today=day
                    )

    def billing_day(self, day: dt.date) -> bool:
        """A billing date of a schedule (a period's billed start or its end), a change's day,
        or a month's last day (which bills whatever else is due: late usage, a sweep)."""
        if self.bounds is None:  # the schedules as they stand (a change or cancellation moves them)
            pairs = BillingPeriod.objects.values_list("billed_from", "end_date")
            self.bounds = {d for pair in pairs for d in pair}
        return (day + dt.timedelta(days=1)).day == 1 or day in self.bounds or day in self.changed

    def usage(self, day: dt.date) -> None:
        """A monthly subscription sends tokens every Tuesday while it is live."""
        if day.weekday() != 1:
            return
        events = []
        for n, (sub, deal) in enumerate(zip(self.subs, self.deals, strict=True)):
            if deal.annual:
                continue
            sub.refresh_from_db()
            if not sub.start_date <= day < (sub.canceled_on or sub.end_date):
                continue
            events.append(
                {
                    "transaction_id": f"t{n}-{day.isoformat()}",
                    "external_subscription_id": sub.external_id,
                    "code": "tokens",
                    "timestamp": f"{day.isoformat()}T10:00:00Z",
                    "properties": {"tokens": deal.tokens + day.toordinal() % 997},
                }
            )
        if events:
            with at(day, 12):
                events_ingest(raw_events=events)

    def plan_credit(self, invoice: Invoice) -> None:
        """The drawn goodwill credit: on the subscription's n-th invoice, some days after it."""
        deal = self.deals[self.subs.index(invoice.subscription)]
        if invoice.subtotal <= 0 or deal.credit is None:
            return
        billed = self.billed.setdefault(invoice.subscription_id, [])
        billed.append(invoice.pk)
        nth, percent, after = deal.credit
        if len(billed) == nth + 1:
            self.credits[invoice.issue_date + dt.timedelta(days=after)] = (invoice.pk, percent)

    def credit_notes(self, day: dt.date) -> None:
        if day not in self.credits:
            return
        invoice_id, percent = self.credits[day]
        invoice = Invoice.objects.get(pk=invoice_id)
        amount = round_money(invoice.subtotal * percent / 100, "USD")
        tax = round_money(amount * invoice.tax_rate / 100, "USD")
        if amount <= 0 or amount + tax > invoice.total - invoice.credited_amount:
            return
        with at(day, 10):
            credit_note_issue(invoice=invoice, amount=amount, reason="Goodwill")

    # collections: each invoice gets its customer's habit
    def plan_collection(self, invoice: Invoice, day: dt.date) -> None:
        habit = self.deals[self.subs.index(invoice.subscription)].habit
        steps = {
            "on_time": [(10, "pay")],
            "in_two_parts": [(20, "pay_part"), (50, "pay")],
            "overpays": [(5, "overpay"), (15, "refund")],
            "bounces": [(7, "pay"), (12, "bounce"), (20, "pay")],
            "never": [(60, "write_off")],
        }[habit]
        self.plans[invoice.pk] = [(day + dt.timedelta(days=d), action) for d, action in steps]

    def collect(self, day: dt.date) -> None:
        for invoice_id, steps in self.plans.items():
            for when, action in steps:
                if when == day:
                    with at(day, 14):
                        self.collection(Invoice.objects.get(pk=invoice_id), day, action)

    def collection(self, invoice: Invoice, day: dt.date, action: str) -> None:
        customer = invoice.customer
        open_ = invoice.open_amount if invoice.status == Invoice.Status.FINALIZED else D(0)
        if action in ("pay", "pay_part", "overpay") and open_ > 0:
            amount = round_money(open_ * D("0.6"), "USD") if action == "pay_part" else open_
            paid = amount + D("100.00") if action == "overpay" else amount
            payment_record(
                customer=customer,
                amount=paid,
                currency="USD",
                received_on=day,
                reference=f"{action} {invoice.number}",
                allocations={invoice: amount},
            )
        elif action == "refund":
            balance = credit_balance(customer)
            if balance > 0:
                refund_record(customer=customer, amount=min(balance, D("100.00")), refunded_on=day)
        elif action == "bounce":
            payment = (
                Payment.objects.filter(reference=f"pay {invoice.number}", reversed_on=None)
                .order_by("-pk")
                .first()
            )
            if payment is not None:
                payment_reverse(payment=payment, reason="Returned", on=day)
        elif action == "write_off" and open_ > 0:
            invoice_write_off(invoice=invoice, reason="Uncollectible", on=day)

    # month end: recognition, the journal, the ties
    def month_end(self, day: dt.date) -> None:
        month = add_months(day, -1)
        with at(day, 2):
            contracts_sync()
            recognize(month)
        with at(day, 23, 30):
            journal_sync(today=day)
        assert_books_tie(full=day.month in (1, 4, 7, 10))  # everything each quarter
        self.assert_closed_unchanged()

    def close(self, day: dt.date) -> None:
        month = add_months(day.replace(day=1), -1)
        if not (month.year == self.year and month.month <= self.closed_months):
            return
        with at(day, 16):
            journal_sync(today=day)
            period = period_for(month)  # a quiet month has no period until now
            period_cash_review(period=period, by=self.finance)
            period_close(period=period, by=self.finance)
        assert_books_tie()  # every tie as the month closes
        self.closed[period.pk] = closed_snapshot(period)
        self.closed_rows[period.pk] = deferred_rollforward(period, period)  # [] before any

    def pay_late(self, day: dt.date) -> None:
        """A payment found after its month closed, recorded dated on that month's last day: it
        posts into the first open month, on its first day, its own date kept."""
        month = add_months(day.replace(day=1), -1)
        period = AccountingPeriod.objects.filter(start=month, status="closed").first()
        if not self.late_payment or period is None:
            return
        customer = Customer.objects.get(name="Customer 0")
        with at(day, 15):
            payment = payment_record(
                customer=customer,
                amount=D("12.34"),
                currency="USD",
                received_on=last_day(period),
                reference=f"late {month:%Y-%m}",
                auto_apply=False,
            )
            journal_sync(today=day)
        entry = JournalLine.objects.get(
            entry__kind="payment", entry__source=f"payment:{payment.pk}", debit__gt=0
        ).entry
        assert (entry.original_date, entry.entry_date) == (last_day(period), day.replace(day=1))
        assert entry.period.start == day.replace(day=1)
        self.assert_closed_unchanged()

    def assert_closed_unchanged(self) -> None:
        for pk, snapshot in self.closed.items():
            period = AccountingPeriod.objects.get(pk=pk)
            assert closed_snapshot(period) == snapshot, period
            assert deferred_rollforward(period, period) == self.closed_rows[pk], f"{period}"


@pytest.mark.django_db
@settings(
    max_examples=5,  # and the explicit year: each example is a year of documents
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a year does not shrink in time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=years())
@example(  # always run: the leap year, a Feb 29 and a Jan 31 start, every habit, every change
    drawn={
        "year": 2028,
        "deals": [
            Deal(False, 2, 14, 2499, True, "in_two_parts", (45, 20), None, (0, 36, 8), 293),
            Deal(False, 3, 18, 0, False, "overpays", None, 200, None, 4533),
            Deal(True, 0, 12, 1500, False, "bounces", (100, 15), 250, None, 1),
            Deal(True, 1, 7, 0, True, "never", (150, 3), None, (0, 10, 20), 1),
        ],
        "closed_months": 4,
        "late_payment": True,
    }
)
def test_the_rollforward_ties_to_the_journal_for_a_generated_year(drawn):
    note(f"drawn: {drawn!r}")
    with transaction.atomic():  # each example on its own: rolled back at its end
        year = Year(drawn)
        year.run()
        rows = assert_books_tie()
        year.assert_closed_unchanged()
        assert_ended_contracts_recognized_what_they_billed(year)

        # The roll-forward's movements over the year are the documents' own figures: billed is
        # the invoices and the usage accrued before its invoice and not reversed yet
        billed = exact_sum(
            Invoice.objects.exclude(status=Invoice.Status.DRAFT).values_list("subtotal", flat=True)
        ) + exact_sum(
            UsageAccrual.objects.filter(reversal=None)
            .exclude(entry=None)
            .values_list("amount", flat=True)
        )
        credited = exact_sum(CreditNote.objects.values_list("subtotal", flat=True))
        posted = exact_sum(
            RecognitionLine.objects.exclude(entry=None).values_list("amount", flat=True)
        )
        assert exact_sum(r.billed for r in rows) == billed
        assert exact_sum(r.credited for r in rows) == credited
        assert exact_sum(r.recognized for r in rows) == posted
        assert rows[-1].closing == billed - credited - posted
        # …and the months 1..k closed, in order
        closed = AccountingPeriod.objects.filter(status="closed").order_by("start")
        assert [p.start.month for p in closed] == list(range(1, drawn["closed_months"] + 1))
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_settling_the_exact_open_amount_passes_the_databases_check():
    # Given an invoice of 3,408.64 with a credit note of 1,227.11 and 37.02 paid: 2,144.51 open
    # (a generated year found it: an invoice credited 36 %, credit balance applied, paid on time)
    acme = cash.customer(name="Acme")
    invoice = cash.issue(acme, "3408.64", "2026-01-01")
    cash.credit(invoice, "1227.11", "2026-01-02")
    cash.pay(acme, "37.02", "2026-01-03")
    assert cash.fresh(invoice).open_amount == D("2144.51")

    # When the customer pays exactly what is open
    with at(dt.date(2026, 1, 4), 12):
        cash.pay(acme, "2144.51", "2026-01-04")

    # Then it is paid (SQLite's CHECK adds 1227.11 + 2181.53 = 3408.6400000000003 in doubles:
    # it compares within half of the amounts' last decimal, so this is not taken for too much)
    assert cash.figures(invoice)[:2] == (Invoice.Status.PAID, D("0.00"))


@pytest.mark.django_db
@pytest.mark.parametrize("synced", ["monthly", "after_the_changes"])
@pytest.mark.xfail(
    strict=True,
    reason="a cancellation's reduction is measured from the contract, rounded once (2,499.84); "
    "billing credits the unused time invoice line by invoice line (2,499.83): a cent stays in "
    "deferred revenue (docs/revrec.md, Rules)",
)
def test_an_annual_upgrade_then_cancellation_recognizes_what_was_billed_net(synced):
    """Found by the generated year (2027, sub_gen_2).

    Both ways the seats are allocated 408.46, a cent short of the 408.47 billed net: revrec
    removes the cancelled version's remaining fee rounded once (2,990 × 306/366 = 2,499.836 →
    2,499.84) while billing credits the unused time per invoice line (1,249.92 + 1,249.91 =
    2,499.83). Known, kept failing strictly until revrec measures a cancellation from its credit
    notes.

    after_the_changes (the contract first made on Jul 1) used to allocate the platform fee
    1,465.66 and the seats −467.04: ssp_of priced each original version only up to its end as
    cut by the change and the cancellation. It now prices them as signed, like their fees
    (590.16 for the platform fee, as made monthly)."""
    monthly, annual = plans()
    deal = Deal(True, 5, 5, 0, False, "on_time", None, None, None, 1)  # 5 seats from Apr 30
    sub = subscribe(2, deal, 2027, monthly, annual)
    seats = sub.items.get(name="Seats")
    # Given a year from Apr 30, 2027: platform 3,600.00 + 5 seats × 299.00 = 5,095.00 up front
    with at(dt.date(2027, 4, 30), 1):
        billing_run(today=dt.date(2027, 4, 30))
    for month in (dt.date(2027, 5, 1), dt.date(2027, 6, 1)):  # each month recognized as it ends
        if synced != "monthly":
            break
        with at(month, 2):
            contracts_sync()
            recognize(add_months(month, -1))
    # When the seats go to 10 from May 20 (invoiced at once) and it is cancelled from Jun 29
    with at(dt.date(2027, 5, 20), 0, 30):
        subscription_set_quantity(
            subscription=sub,
            item=seats,
            quantity=D("10"),
            effective_date=dt.date(2027, 5, 20),
            invoice_now=True,
            today=dt.date(2027, 5, 20),
        )
        billing_run(today=dt.date(2027, 5, 20))
    with at(dt.date(2027, 6, 29), 0, 30):
        subscription_cancel(
            subscription=sub,
            reason="Budget cut",
            effective_date=dt.date(2027, 6, 29),
            today=dt.date(2027, 6, 29),
        )
        billing_run(today=dt.date(2027, 6, 29))
    # Then billing: the year has 366 days (Feb 29, 2028), 346 from May 20, 306 from Jun 29.
    # 5,095.00; the upgrade −1,495 × 346/366 = −1,413.31 + 2,990 × 346/366 = 2,826.61: 1,413.30;
    # the cancellation credits 3,600 × 306/366 = 3,009.84 and 1,495 × 306/366 = 1,249.92 on the
    # first invoice, (2,826.61 − 1,413.31) × 306/346 → 2,499.83 − 1,249.92 = 1,249.91 on the
    # second: the seats billed 1,495.00 + 1,413.30 − 1,249.92 − 1,249.91 = 408.47 net.
    invoices = Invoice.objects.filter(subscription=sub).order_by("pk")
    assert [i.subtotal for i in invoices] == [D("5095.00"), D("1413.30")]
    notes = CreditNote.objects.filter(invoice__subscription=sub).order_by("invoice_id")
    assert [n.subtotal for n in notes] == [D("4259.76"), D("1249.91")]
    with at(dt.date(2027, 7, 1), 2):
        contracts_sync()
        recognize(dt.date(2027, 6, 1))
    fee, seat = PerformanceObligation.objects.filter(contract__subscription=sub).order_by(
        "position"
    )
    # the platform fee 3,600.00 − 3,009.84 = 590.16, the seats 408.47: what was billed net
    assert fee.allocated_amount == D("590.16")
    assert seat.allocated_amount == D("408.47")  # 408.46: the known cent (see the xfail)
