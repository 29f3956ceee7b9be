"""Revenue › Accounts, Accounting periods, Journal entries, the journal CSV and the trial balance,
for finance (Sales gets 403). Figures: one month of a 625.00 invoice, 600.00 paid, 354.17
recognized, and a EUR invoice of 100.00; February's entry stays out of January's pages."""

import csv
import io
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse

from revrec.models import Account, AccountingPeriod
from revrec.selectors import trial_balance
from tests.factories import UserFactory
from tests.revrec.ledger import closed, post

D = Decimal
pytestmark = pytest.mark.django_db


def login(client, role: str):
    user = UserFactory(username=role.lower(), is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def january():
    """January's journal: invoice 625.00 (Jan 15), payment 600.00 (Jan 20), recognition 354.17
    (Jan 31), a EUR invoice 100.00 (Jan 22); and a February invoice of 50.00."""
    post("1", "2026-01-15", "625.00", memo="Invoice INV-0001")
    post("7", "2026-01-20", "600.00", kind="payment", debit="cash", credit="accounts_receivable")
    post(
        "2026-01",
        "2026-01-31",
        "354.17",
        kind="recognition",
        debit="deferred_revenue",
        credit="revenue",
    )
    post("2", "2026-01-22", "100.00", currency="EUR")
    post("3", "2026-02-15", "50.00")
    return AccountingPeriod.objects.get(start="2026-01-01")


def csv_rows(answer) -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer.content.decode())))


def test_the_trial_balance_as_of_januarys_end(january):
    # When the trial balance is taken at January's end
    balances = {b.currency: b for b in trial_balance(january)}

    # Then, in USD: Cash Dr 600.00; AR 625.00 − 600.00 = Dr 25.00; Deferred 625.00 − 354.17 =
    # Cr 270.83; Revenue Cr 354.17; both columns 625.00. EUR: AR Dr 100.00 = Deferred Cr 100.00.
    usd = [(r.account.code, r.debit, r.credit) for r in balances["USD"].rows]
    assert usd == [
        ("1000", D("600.00"), 0),
        ("1100", D("25.00"), 0),
        ("2100", 0, D("270.83")),
        ("4000", 0, D("354.17")),
    ]
    assert balances["USD"].debit == balances["USD"].credit == D("625.00")
    eur = [(r.account.code, r.debit, r.credit) for r in balances["EUR"].rows]
    assert eur == [("1100", D("100.00"), 0), ("2100", 0, D("100.00"))]
    # And at February's end the 50.00 invoice is in: AR Dr 75.00, Deferred Cr 320.83
    february = AccountingPeriod.objects.get(start="2026-02-01")
    usd_feb = {r.account.code: (r.debit, r.credit) for r in trial_balance(february)[1].rows}
    assert usd_feb["1100"] == (D("75.00"), 0) and usd_feb["2100"] == (0, D("320.83"))


def test_the_journal_csv_of_a_period(client, january):
    login(client, "Finance")
    # Given a document dated Jan 28 posted after January closed (it lands on Feb 1)
    closed("2026-01")
    post("4", "2026-01-28", "25.00", memo="Invoice INV-0004")

    # When finance downloads January's journal
    answer = client.get(reverse("admin:revrec_journalentry_export", args=[january.pk]))

    # Then one row per line, by date: the accountant's columns and the figures
    assert answer["Content-Disposition"] == 'attachment; filename="journal-2026-01.csv"'
    rows = csv_rows(answer)
    assert rows[0] == [
        "date",
        "entry_id",
        "account_code",
        "account_name",
        "debit",
        "credit",
        "currency",
        "memo",
        "document",
        "original_date",
    ]
    body = [[r[0], r[2], r[4], r[5], r[6], r[7], r[8], r[9]] for r in rows[1:]]
    assert body == [
        ["2026-01-15", "1100", "625.00", "", "USD", "Invoice INV-0001", "invoice:1", "2026-01-15"],
        ["2026-01-15", "2100", "", "625.00", "USD", "Invoice INV-0001", "invoice:1", "2026-01-15"],
        ["2026-01-20", "1000", "600.00", "", "USD", "payment 7", "payment:7", "2026-01-20"],
        ["2026-01-20", "1100", "", "600.00", "USD", "payment 7", "payment:7", "2026-01-20"],
        ["2026-01-22", "1100", "100.00", "", "EUR", "invoice 2", "invoice:2", "2026-01-22"],
        ["2026-01-22", "2100", "", "100.00", "EUR", "invoice 2", "invoice:2", "2026-01-22"],
        [
            "2026-01-31",
            "2100",
            "354.17",
            "",
            "USD",
            "recognition 2026-01",
            "recognition:2026-01",
            "2026-01-31",
        ],
        [
            "2026-01-31",
            "4000",
            "",
            "354.17",
            "USD",
            "recognition 2026-01",
            "recognition:2026-01",
            "2026-01-31",
        ],
    ]
    assert rows[1][3] == "Accounts receivable"
    # And February's journal has the late one dated Feb 1, its original date Jan 28
    february = AccountingPeriod.objects.get(start="2026-02-01")
    late = csv_rows(client.get(reverse("admin:revrec_journalentry_export", args=[february.pk])))
    assert [r[0] for r in late[1:]] == ["2026-02-01", "2026-02-01", "2026-02-15", "2026-02-15"]
    assert late[1][9] == "2026-01-28"


def test_the_trial_balance_page_and_csv(client, january):
    login(client, "Finance")
    url = reverse("admin:revrec_journalentry_trial_balance")

    page = client.get(url, {"period": january.pk})
    text = " ".join(page.content.decode().split())
    assert page.status_code == 200
    assert "USD at the end of January 2026" in text and "$270.83" in text and "$625.00" in text

    rows = csv_rows(client.get(url, {"period": january.pk, "download": "1"}))
    assert rows == [
        ["currency", "account_code", "account_name", "debit", "credit"],
        ["EUR", "1100", "Accounts receivable", "100.00", ""],
        ["EUR", "2100", "Deferred revenue", "", "100.00"],
        ["EUR", "", "Total", "100.00", "100.00"],
        ["USD", "1000", "Cash", "600.00", ""],
        ["USD", "1100", "Accounts receivable", "25.00", ""],
        ["USD", "2100", "Deferred revenue", "", "270.83"],
        ["USD", "4000", "Subscription and usage revenue", "", "354.17"],
        ["USD", "", "Total", "625.00", "625.00"],
    ]


def test_finance_sees_the_pages_and_sales_gets_403(client, january):
    entry = january.entries.first()
    pages = [
        reverse("admin:revrec_account_changelist"),
        reverse("admin:revrec_account_change", args=[Account.objects.get(role="cash").pk]),
        reverse("admin:revrec_accountingperiod_changelist"),
        reverse("admin:revrec_accountingperiod_change", args=[january.pk]),
        reverse("admin:revrec_journalentry_changelist"),
        reverse("admin:revrec_journalentry_changelist") + f"?period__id__exact={january.pk}",
        reverse("admin:revrec_journalentry_change", args=[entry.pk]),
        reverse("admin:revrec_journalentry_trial_balance"),
        reverse("admin:revrec_journalentry_export", args=[january.pk]),
    ]
    login(client, "Finance")
    assert [client.get(url).status_code for url in pages] == [200] * len(pages)
    login(client, "Sales")
    assert [client.get(url).status_code for url in pages] == [403] * len(pages)


def test_the_journal_list_filters_by_account_without_repeating_entries(client, january):
    login(client, "Finance")
    ar = Account.objects.get(role="accounts_receivable")
    answer = client.get(
        reverse("admin:revrec_journalentry_changelist"),
        {"lines__account__id__exact": ar.pk, "period__id__exact": january.pk},
    )
    # AR has lines in the invoice, the payment and the EUR invoice of January: three entries
    assert answer.context["cl"].result_count == 3


@time_machine.travel("2026-02-02 09:00Z", tick=False)
def test_the_period_page_reviews_cash_closes_and_reopens(client, january):
    login(client, "Finance")
    url = reverse("admin:revrec_accountingperiod_change", args=[january.pk])

    # The checklist shows the cash review failing; Close is refused with the failing check
    page = " ".join(client.get(url).content.decode().split())
    assert 'data-check="cash" data-ok="0"' in page and "Close January 2026" in page
    answer = client.post(url, {"close": "1"}, follow=True)
    assert "cannot close. Unapplied cash reviewed:" in answer.content.decode()
    january.refresh_from_db()
    assert january.status == "open"

    # Finance confirms the review, then closes
    client.post(url, {"cash_reviewed": "1"})
    assert client.post(url, {"close": "1"}).status_code == 302
    january.refresh_from_db()
    assert january.status == "closed"

    # Reopen needs a reason (said on the form), then reopens
    answer = client.post(url, {"reopen": "1", "reason": ""})
    assert answer.status_code == 200 and "This field is required" in answer.content.decode()
    client.post(url, {"reopen": "1", "reason": "Late credit note"})
    january.refresh_from_db()
    assert (january.status, january.reopen_reason) == ("open", "Late credit note")


def test_an_account_role_taken_is_said_on_the_field(client):
    login(client, "Finance")
    answer = client.post(
        reverse("admin:revrec_account_add"),
        {"code": "1010", "name": "Second bank", "type": "asset", "role": "cash", "active": "on"},
    )
    assert answer.status_code == 200
    assert answer.context["adminform"].form.errors["role"] == [
        "1000 Cash has the role “Cash” already: one account per role. Take the role off it "
        "first (its page), then set it here."
    ]
    assert not Account.objects.filter(code="1010").exists()
