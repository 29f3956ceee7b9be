"""The close's batch paths (ledger.post_entries, journal_sync, recognize, contracts_sync, the
close checklist): the same entries as one by one, and a number of queries that does not grow
with the number of documents."""

from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import ValidationError
from invoicing.services import subscription_bill
from revrec.close import close_checklist
from revrec.ledger import Line, period_for, post_entries
from revrec.models import JournalEntry, JournalLine
from revrec.postings import journal_sync
from revrec.recognition import contracts_sync, recognize
from tests.factories import CustomerFactory, day, hybrid_plan, subscribe
from tests.receivables.cash import pay
from tests.revrec.ledger import chart, closed, post

D = Decimal


def two_lines(source: str, on: str, amount: str) -> dict:
    return dict(
        kind="invoice",
        source=source,
        on=day(on),
        memo=f"invoice {source}",
        currency="USD",
        lines=[
            Line(role="accounts_receivable", debit=D(amount)),
            Line(role="deferred_revenue", credit=D(amount)),
        ],
    )


def figures(entry: JournalEntry) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (line.account.role, line.debit, line.credit)
        for line in entry.lines.select_related("account").order_by("id")
    ]


@pytest.mark.django_db
def test_post_entries_posts_each_source_once_and_redirects_a_closed_month():
    # Given invoice:1 posted already and January closed
    chart()
    earlier = post("invoice:1", "2026-02-03", "10.00")
    closed("2026-01")
    # When four entries are posted at once: invoice:1 again, invoice:2 dated in closed January,
    # invoice:3 twice (the first one counts)
    posted = post_entries(
        [
            two_lines("invoice:1", "2026-02-05", "99.00"),
            two_lines("invoice:2", "2026-01-20", "120.00"),
            two_lines("invoice:3", "2026-02-10", "30.50"),
            two_lines("invoice:3", "2026-02-11", "77.00"),
        ]
    )
    # Then invoice:1 is the entry posted before; invoice:2 lands on Feb 1 with Jan 20 kept;
    # invoice:3 is posted once, with the first figures
    assert posted[0] == earlier and not getattr(posted[0], "posted_now", False)
    assert posted[2] == posted[3] and posted[2].posted_now
    two = JournalEntry.objects.get(source="invoice:2")
    assert (two.entry_date, two.original_date, two.period.start) == (
        day("2026-02-01"),
        day("2026-01-20"),
        day("2026-02-01"),
    )
    assert figures(two) == [
        ("accounts_receivable", D("120.00"), D("0")),
        ("deferred_revenue", D("0"), D("120.00")),
    ]
    assert figures(posted[2]) == [
        ("accounts_receivable", D("30.50"), D("0")),
        ("deferred_revenue", D("0"), D("30.50")),
    ]
    assert JournalEntry.objects.count() == 3 and JournalLine.objects.count() == 6


@pytest.mark.django_db
def test_post_entries_refuses_an_unbalanced_entry_before_writing_any():
    chart()
    unbalanced = two_lines("invoice:9", "2026-02-10", "5.00")
    unbalanced["lines"][1] = Line(role="deferred_revenue", credit=D("4.99"))
    with pytest.raises(ValidationError, match="does not balance: debits 5.00, credits 4.99"):
        post_entries([two_lines("invoice:8", "2026-02-10", "5.00"), unbalanced])
    assert not JournalEntry.objects.exists()


def month_of(n: int) -> None:
    """n customers, each with a subscription from Jan 1 (500.00 fee + 5 seats at 25.00 in
    advance, calls in arrears), its January invoice of 625.00 and a payment of it on Jan 10, and
    its Feb 1 invoice (January's calls: none, so January has no usage left to accrue — an
    accrual rates its subscription's usage on its own)."""
    plan = hybrid_plan()
    for k in range(n):
        person = CustomerFactory(external_id=f"cus_{n}_{k}", name=f"Customer {n} {k}")
        subscription = subscribe(
            customer=person, plan=plan, external_id=f"sub_{n}_{k}", start="2026-01-01"
        )
        with time_machine.travel("2026-01-01 12:00Z", tick=False):
            (invoice,) = subscription_bill(subscription=subscription, today=day("2026-01-01"))
        assert invoice.total == D("625.00")
        pay(person, "625.00", "2026-01-10", allocations={invoice: D("625.00")})
        with time_machine.travel("2026-02-01 01:00Z", tick=False):
            subscription_bill(subscription=subscription, today=day("2026-02-01"))


def close_queries(n: int) -> tuple[int, int]:
    """(queries of contracts_sync + recognize + journal_sync + the checklist, entries made)."""
    month_of(n)
    with CaptureQueriesContext(connection) as captured:
        contracts_sync()
        recognize(day("2026-01-01"))
        journal_sync(today=day("2026-01-31"))
        close_checklist(period_for(day("2026-01-01")))
    return len(captured), JournalEntry.objects.count()


@pytest.mark.django_db
def test_the_close_takes_as_many_queries_for_six_subscriptions_as_for_two():
    chart()
    small, small_entries = close_queries(2)
    assert small_entries == 2 * 3 + 2 * 2  # per subscription: invoice, payment, allocation;
    # and two recognition lines of January (platform fee, seats)
    big, big_entries = close_queries(6)
    assert big_entries - small_entries == 6 * 5
    assert big <= small
