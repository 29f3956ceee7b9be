"""The journal's integrity in the database (PostgreSQL triggers, revrec/migrations/0004): an
unbalanced entry or one of a single line is refused at commit; nothing is inserted into a closed
period; posted entries and lines are never updated or deleted. On SQLite the models' guards refuse
the ORM's updates and deletes, and post_entry refuses what does not balance."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, connection, transaction

from core.errors import ValidationError
from revrec.ledger import Line, account_for, post_entry
from revrec.models import AccountingPeriod, JournalEntry, JournalLine
from tests.revrec.ledger import closed, post

D = Decimal
REFUSED = (IntegrityError, InternalError)


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("database triggers are tested on PostgreSQL")


def raw_entry(period: AccountingPeriod, source: str, on: dt.date) -> JournalEntry:
    """An entry written past post_entry (as a bug or a manual INSERT would)."""
    return JournalEntry.objects.create(
        period=period,
        entry_date=on,
        original_date=on,
        kind="manual",
        source=source,
        memo="written directly",
        currency="USD",
    )


def raw_lines(entry: JournalEntry, *pairs: tuple[str, str, str]) -> None:
    JournalLine.objects.bulk_create(
        JournalLine(entry=entry, account=account_for(role), debit=D(dr), credit=D(cr))
        for role, dr, cr in pairs
    )


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_entry_is_refused_at_commit_and_nothing_stays():
    postgres_only()
    # Given an open January
    period = post("seed", "2026-01-05", "10.00").period
    before = (JournalEntry.objects.count(), JournalLine.objects.count())

    # When an entry of Dr 100.00 / Cr 99.99 is written directly and the transaction commits
    refused = pytest.raises(REFUSED, match="does not balance: debits 100.0000, credits 99.9900")
    with refused, transaction.atomic():
        entry = raw_entry(period, "unbalanced", dt.date(2026, 1, 10))
        raw_lines(entry, ("accounts_receivable", "100.00", "0"), ("revenue", "0", "99.99"))

    # Then the commit failed and nothing of it is left
    assert (JournalEntry.objects.count(), JournalLine.objects.count()) == before


@pytest.mark.django_db(transaction=True)
def test_an_entry_of_one_line_or_none_is_refused_at_commit():
    postgres_only()
    period = post("seed", "2026-01-05", "10.00").period
    # An entry with no line at all
    with pytest.raises(REFUSED, match="has 0 line"), transaction.atomic():
        raw_entry(period, "empty", dt.date(2026, 1, 10))
    # An entry of a single line
    with pytest.raises(REFUSED, match="has 1 line"), transaction.atomic():
        raw_lines(raw_entry(period, "single", dt.date(2026, 1, 10)), ("cash", "5.00", "0"))
    assert JournalEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_lines_are_checked_together_at_commit_not_one_by_one():
    postgres_only()
    # Given an open January: lines inserted one at a time balance only once both are in
    period = post("seed", "2026-01-05", "10.00").period
    with transaction.atomic():
        entry = raw_entry(period, "two-steps", dt.date(2026, 1, 10))
        raw_lines(entry, ("cash", "42.00", "0"))
        raw_lines(entry, ("accounts_receivable", "0", "42.00"))
    # Then the entry is committed (the check is deferred to the commit)
    assert JournalEntry.objects.filter(source="two-steps").exists()


@pytest.mark.django_db
def test_a_direct_insert_into_a_closed_period_is_refused_and_changes_nothing():
    postgres_only()
    # Given January closed with one entry of 10.00
    post("seed", "2026-01-05", "10.00")
    january = closed("2026-01")
    before = list(JournalLine.objects.values_list("id", "debit", "credit"))

    # When an entry is inserted into January directly
    late = JournalEntry(
        period=january,
        entry_date=dt.date(2026, 1, 20),
        original_date=dt.date(2026, 1, 20),
        kind="manual",
        source="late",
        memo="late",
        currency="USD",
    )
    with pytest.raises(IntegrityError, match="is closed: nothing posts"), transaction.atomic():
        JournalEntry.objects.bulk_create([late])  # bulk_create: past the model's own guard
    # Nor a line added to January's entry
    with pytest.raises(IntegrityError, match="is closed"), transaction.atomic():
        raw_lines(JournalEntry.objects.get(source="seed"), ("cash", "1.00", "0"))

    # Then January's journal is as it was
    assert list(JournalLine.objects.values_list("id", "debit", "credit")) == before
    assert JournalEntry.objects.count() == 1


@pytest.mark.django_db
def test_posting_dated_in_a_closed_period_lands_in_the_next_open_one():
    # Given January closed
    post("seed", "2026-01-05", "10.00")
    closed("2026-01")

    # When an invoice dated Jan 20 is posted
    entry = post("late", "2026-01-20", "30.00")

    # Then it is in February, on Feb 1, with its own date kept; January is unchanged
    assert (entry.period.start, entry.entry_date, entry.original_date) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 1),
        dt.date(2026, 1, 20),
    )
    assert JournalEntry.objects.filter(period__start=dt.date(2026, 1, 1)).count() == 1


@pytest.mark.django_db
def test_a_month_first_seen_after_a_later_close_is_born_closed():
    # Given March closed, and no period at all for February yet
    post("seed", "2026-03-05", "10.00")
    closed("2026-03")

    # When a document dated Feb 10 is posted
    entry = post("feb", "2026-02-10", "20.00")

    # Then February was made closed and the entry landed in April
    assert AccountingPeriod.objects.get(start=dt.date(2026, 2, 1)).status == "closed"
    assert entry.period.start == dt.date(2026, 4, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("what", ["update", "delete"])
def test_posted_lines_and_entries_cannot_be_updated_or_deleted(what):
    # Given a posted entry in an open period
    entry = post("inv-1", "2026-01-05", "10.00")
    line = entry.lines.first()

    # When the ORM changes or deletes the line or the entry: refused (the models' guards)
    with pytest.raises(IntegrityError, match="immutable"):
        if what == "update":
            line.debit = D("11.00")
            line.save()
        else:
            line.delete()
    with pytest.raises(IntegrityError, match="immutable"):
        if what == "update":
            entry.memo = "changed"
            entry.save()
        else:
            entry.delete()

    # Then on PostgreSQL the database refuses it too, past the models (queryset update/delete)
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
            lines = JournalLine.objects.filter(pk=line.pk)
            lines.update(memo="x") if what == "update" else lines._raw_delete(lines.db)
        with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
            entries = JournalEntry.objects.filter(pk=entry.pk)
            entries.update(memo="x") if what == "update" else entries._raw_delete(entries.db)
    line.refresh_from_db()
    entry.refresh_from_db()
    assert (line.debit or line.credit, entry.memo) == (D("10.00"), "invoice inv-1")


@pytest.mark.django_db
def test_post_entry_refuses_an_unbalanced_entry_on_any_database():
    with pytest.raises(ValidationError, match="does not balance: debits 10.00, credits 9.99"):
        post_entry(
            kind="invoice",
            source="bad",
            on=dt.date(2026, 1, 5),
            memo="bad",
            currency="USD",
            lines=[
                Line(role="accounts_receivable", debit=D("10.00")),
                Line(role="revenue", credit=D("9.99")),
            ],
        )
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db
def test_a_reversing_entry_is_the_correction():
    # Given a posted 10.00 entry
    entry = post("inv-2", "2026-01-05", "10.00")
    from revrec.ledger import reverse_entry

    # When it is reversed
    reversal = reverse_entry(entry=entry, on=dt.date(2026, 1, 9), memo="reversed")

    # Then the original stands and the reversal mirrors it
    sides = sorted(reversal.lines.values_list("account__role", "debit", "credit"))
    assert sides == [
        ("accounts_receivable", D("0"), D("10.00")),
        ("deferred_revenue", D("10.00"), D("0")),
    ]
    assert JournalEntry.objects.count() == 2


def _in_thread(job, outcomes, key, barrier=None):
    import threading

    def run():
        try:
            if barrier is not None:
                barrier.wait(timeout=10)
            with transaction.atomic():
                outcomes[key] = job()
        except Exception as exc:  # noqa: BLE001 - reported in the assertion
            outcomes[key] = repr(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_close_waits_for_a_posting_in_flight_and_a_later_posting_moves_on():
    postgres_only()
    import threading
    import time

    from django.contrib.auth import get_user_model

    from revrec.close import period_cash_review, period_close

    # Given January open, its checks passing (nothing to bill, cash reviewed)
    january = post("seed", "2026-01-05", "10.00").period
    finance = get_user_model().objects.create(username="fin")
    period_cash_review(period=january, by=finance)
    outcomes: dict[str, object] = {}
    started = threading.Event()

    def slow_posting():
        entry = post("in-flight", "2026-01-30", "20.00")  # holds January's row lock
        started.set()
        time.sleep(1)
        return entry.period.start

    # When a posting dated Jan 30 is in flight and finance closes January meanwhile
    poster = _in_thread(slow_posting, outcomes, "posting")
    started.wait(timeout=10)
    closer = _in_thread(lambda: period_close(period=january, by=finance).status, outcomes, "close")
    poster.join(timeout=30)
    closer.join(timeout=30)

    # Then the close waited: the posting is in January, and January is closed after it
    assert outcomes == {"posting": dt.date(2026, 1, 1), "close": "closed"}
    # And a posting dated Jan 31 now lands in February
    assert post("after", "2026-01-31", "5.00").period.start == dt.date(2026, 2, 1)
