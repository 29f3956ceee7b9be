"""Reads of the journal: account balances, a period's lines as an accountant imports them, and
the trial balance."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from core.money import exact_sum, round_money
from customers.models import Customer
from revrec.models import Account, AccountingPeriod, JournalLine

ZERO = Decimal(0)
# Accounts whose balance is debits − credits; the others (liabilities, equity, revenue) show
# credits − debits, so every balance reads positive in its usual direction.
DEBIT_NORMAL = (Account.Type.ASSET, Account.Type.EXPENSE)


def account_balances(
    *, as_of: dt.date | None = None, customer: Customer | None = None
) -> dict[tuple[str, str], Decimal]:
    """{(account role, or code for an account without one, currency): balance} from the journal
    lines of the entries dated on or before `as_of` (all of them by default), for one customer's
    lines when given. A balance is debits − credits on an asset or expense account, credits −
    debits on the others. Sums are exact: SQL SUM on PostgreSQL (numeric), exact_sum in Python
    on SQLite (whose SUM is floating point). Accounts without lines are left out."""
    lines = JournalLine.objects.order_by()
    if as_of is not None:
        lines = lines.filter(entry__entry_date__lte=as_of)
    if customer is not None:
        lines = lines.filter(customer=customer)
    keys = ("account_id", "entry__currency")
    sums: dict[tuple[int, str], list[Decimal]] = {}
    if connection.vendor == "postgresql":
        for account_id, currency, debit, credit in lines.values_list(*keys).annotate(
            debit=Sum("debit"), credit=Sum("credit")
        ):
            sums[(account_id, str(currency))] = [debit, credit]
    else:
        grouped: dict = defaultdict(lambda: ([], []))
        for account_id, currency, debit, credit in lines.values_list(*keys, "debit", "credit"):
            debits, credits = grouped[(account_id, str(currency))]
            debits.append(debit)
            credits.append(credit)
        for key, (debits, credits) in grouped.items():
            sums[key] = [exact_sum(debits), exact_sum(credits)]
    accounts = Account.objects.in_bulk({account_id for account_id, _ in sums})
    balances = {}
    for (account_id, currency), (debit, credit) in sums.items():
        account = accounts[account_id]
        balance = debit - credit if account.type in DEBIT_NORMAL else credit - debit
        balances[(account.role or account.code, currency)] = balance
    return balances


def document_of(entry) -> str:
    """The document an entry comes from, as "document:id" (a source that is a bare id is named
    by the entry's kind's first word)."""
    if ":" in entry.source:
        return entry.source
    return f"{entry.kind.split(':')[0]}:{entry.source}"


JOURNAL_CSV_COLUMNS = [
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


def _amount(value: Decimal, currency: str) -> str:
    """The amount in the currency's minor unit (1250.00, 980 for JPY); zero is left blank, so
    each row has its debit or its credit."""
    return f"{round_money(value, currency):f}" if value else ""


def journal_csv_rows(period: AccountingPeriod) -> list[list[str]]:
    """The header and one row per journal line of the entries posted in the period, by date then
    entry: what an accountant imports as a general journal. `date` is the entry's date in the
    books; `original_date` the document's own date (earlier when it was dated in a closed
    period); `document` is the source (kind:source); the memo is the line's, else the entry's."""
    lines = (
        JournalLine.objects.filter(entry__period=period)
        .select_related("entry", "account")
        .order_by("entry__entry_date", "entry_id", "id")
    )
    rows = [JOURNAL_CSV_COLUMNS]
    for line in lines:
        entry, currency = line.entry, str(line.entry.currency)
        rows.append(
            [
                entry.entry_date.isoformat(),
                str(entry.pk),
                line.account.code,
                line.account.name,
                _amount(line.debit, currency),
                _amount(line.credit, currency),
                currency,
                line.memo or entry.memo,
                document_of(entry),
                entry.original_date.isoformat(),
            ]
        )
    return rows


@dataclass(frozen=True)
class TrialBalanceRow:
    account: Account
    debit: Decimal  # the account's balance when it is a debit balance, else 0
    credit: Decimal  # the account's balance when it is a credit balance, else 0


@dataclass(frozen=True)
class TrialBalance:
    period: AccountingPeriod  # as of its end
    currency: str
    rows: list[TrialBalanceRow]

    @property
    def debit(self) -> Decimal:
        return sum((row.debit for row in self.rows), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((row.credit for row in self.rows), ZERO)


def trial_balance(period: AccountingPeriod) -> list[TrialBalance]:
    """Per currency, each account's balance from every entry posted up to the period's end (the
    entries of this period and of all before it): net debit or net credit. The debit column
    sums to the credit column because every entry balances. Accounts with a zero balance are
    left out."""
    sums = (
        JournalLine.objects.filter(entry__period__start__lte=period.start)
        .values("entry__currency", "account")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .order_by()
    )
    accounts = Account.objects.in_bulk()
    by_currency: dict[str, list[TrialBalanceRow]] = {}
    for row in sums:
        currency = str(row["entry__currency"])
        net = round_money(row["debit"] - row["credit"], currency)
        if not net:
            continue
        by_currency.setdefault(currency, []).append(
            TrialBalanceRow(
                account=accounts[row["account"]],
                debit=net if net > 0 else ZERO,
                credit=-net if net < 0 else ZERO,
            )
        )
    return [
        TrialBalance(
            period=period,
            currency=currency,
            rows=sorted(rows, key=lambda r: r.account.code),
        )
        for currency, rows in sorted(by_currency.items())
    ]


def trial_balance_csv_rows(balances: list[TrialBalance]) -> list[list[str]]:
    rows = [["currency", "account_code", "account_name", "debit", "credit"]]
    for balance in balances:
        for row in balance.rows:
            rows.append(
                [
                    balance.currency,
                    row.account.code,
                    row.account.name,
                    _amount(row.debit, balance.currency),
                    _amount(row.credit, balance.currency),
                ]
            )
        rows.append(
            [
                balance.currency,
                "",
                "Total",
                f"{round_money(balance.debit, balance.currency):f}",
                f"{round_money(balance.credit, balance.currency):f}",
            ]
        )
    return rows


# --- the deferred revenue roll-forward ---------------------------------------------------------

RECOGNIZED_KINDS = ("recognition", "reversal:recognition")
# Usage accrued before its invoice counts as billed (the invoice's reversal takes it back).
BILLED_KINDS = ("invoice", "usage_accrual", "reversal:usage_accrual")


@dataclass(frozen=True)
class RollforwardRow:
    period: AccountingPeriod
    currency: str
    opening: Decimal  # the closing of the period before (0 before the first movement)
    billed: Decimal  # invoices: their credits to Deferred revenue net of their debits
    credited: Decimal  # credit notes, voids and other reversals: their net debits
    recognized: Decimal  # recognition entries: their net debits (moved to Revenue)
    closing: Decimal  # opening + billed − credited − recognized


def _movement(kind: str) -> str:
    if kind in BILLED_KINDS:
        return "billed"
    if kind in RECOGNIZED_KINDS:
        return "recognized"
    return "credited"


def deferred_rollforward(
    start_period: AccountingPeriod | None = None, end_period: AccountingPeriod | None = None
) -> list[RollforwardRow]:
    """Per accounting period (the entries' period) and currency, the Deferred revenue account
    (role deferred_revenue) from opening to closing: opening + billed − credited − recognized =
    closing, where each movement sums the account's journal lines of one group of entry kinds
    and the opening is the previous period's closing. So the closing of a period is the
    account's balance as of its last day (account_balances). Every period from the first with a
    movement (or `start_period`) to `end_period` (the latest by default) has a row per currency
    that had a movement by then, quiet months too. One grouped query; exact sums on SQLite."""
    lines = JournalLine.objects.filter(account__role=Account.Role.DEFERRED_REVENUE).order_by()
    if end_period is not None:
        lines = lines.filter(entry__period__start__lte=end_period.start)
    keys = ("entry__period_id", "entry__currency", "entry__kind")
    # {(period id, currency): {movement: credits − debits}}
    net: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    if connection.vendor == "postgresql":
        rows = lines.values_list(*keys).annotate(debit=Sum("debit"), credit=Sum("credit"))
        for period_id, currency, kind, debit, credit in rows:
            net[(period_id, str(currency))][_movement(kind)] += credit - debit
    else:
        grouped: dict = defaultdict(list)
        for period_id, currency, kind, debit, credit in lines.values_list(*keys, "debit", "credit"):
            grouped[(period_id, str(currency), _movement(kind))].append(credit - debit)
        for (period_id, currency, movement), amounts in grouped.items():
            net[(period_id, currency)][movement] = exact_sum(amounts)
    if not net:
        return []
    periods = AccountingPeriod.objects.filter(
        start__gte=AccountingPeriod.objects.filter(pk__in={p for p, _ in net})
        .order_by("start")
        .values("start")[:1]
    ).order_by("start")
    if end_period is not None:
        periods = periods.filter(start__lte=end_period.start)
    currencies = sorted({currency for _, currency in net})
    closing: dict[str, Decimal | None] = dict.fromkeys(currencies)
    result = []
    for period in periods:
        for currency in currencies:
            sums = net.get((period.pk, currency))
            if sums is None and closing[currency] is None:
                continue  # nothing in this currency yet
            sums = sums or {}
            opening = closing[currency] or ZERO
            billed = sums.get("billed", ZERO)
            credited = -sums.get("credited", ZERO)
            recognized = -sums.get("recognized", ZERO)
            closing[currency] = opening + billed - credited - recognized
            if start_period is None or period.start >= start_period.start:
                result.append(
                    RollforwardRow(
                        period=period,
                        currency=currency,
                        opening=opening,
                        billed=billed,
                        credited=credited,
                        recognized=recognized,
                        closing=closing[currency],
                    )
                )
    return result


ROLLFORWARD_CSV_COLUMNS = [
    "period",
    "currency",
    "opening",
    "billed",
    "credited_voided",
    "recognized",
    "closing",
]


def rollforward_csv_rows(rows: list[RollforwardRow]) -> list[list[str]]:
    """The header and one row per period and currency, amounts in the currency's minor unit
    (zero written 0.00)."""
    out = [ROLLFORWARD_CSV_COLUMNS]
    for row in rows:
        out.append(
            [
                f"{row.period.start:%Y-%m}",
                row.currency,
                *(
                    f"{round_money(value, row.currency):f}"
                    for value in (
                        row.opening,
                        row.billed,
                        row.credited,
                        row.recognized,
                        row.closing,
                    )
                ),
            ]
        )
    return out
