"""The revenue reports (Revenue › Revenue by product, Revenue waterfall, Unbilled receivables,
Remaining obligations) and the figures of the finance dashboard's revenue tiles.

Every report is a few grouped queries (a fixed number, whatever the volume: no query per row),
per currency (amounts are never converted). SQLite's SUM is floating point, so there the rows are
fetched and summed exactly in Python (core.money.exact_sum); PostgreSQL sums numerics.

- revenue_by_month: what the Revenue account took per accounting period, product and customer —
  posted recognition lines (their contract's customer, their obligation's charge), less the
  reversed ones, plus any other entry on Revenue (its kind and its lines' customer), so the
  totals are the Revenue account's movements in the journal.
- waterfall: recognized revenue by the month of the invoice that billed it (rows) and the period
  it was recognized in (columns).
- unbilled: the Unbilled receivable account's balance per customer as of a day, and the
  contracts that recognized more than they billed (contract assets).
- remaining_obligations: the fixed obligations' recognition lines not recognized as of a month's
  end, per customer: in the next 12 months and beyond.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from core.money import exact_sum, round_money
from core.periods import add_months, month_start
from invoicing.models import CreditNote, Invoice, InvoiceLine
from revrec.models import (
    Account,
    JournalLine,
    PerformanceObligation,
    RecognitionLine,
    RevenueContract,
)

ZERO = Decimal(0)
BILLED = (Invoice.Status.FINALIZED, Invoice.Status.PAID)
FIXED = (PerformanceObligation.Kind.RATABLE, PerformanceObligation.Kind.POINT_IN_TIME)
NOT_BILLED = "Not billed yet"


def grouped_sums(queryset: QuerySet, keys: tuple[str, ...], fields: tuple[str, ...]) -> dict:
    """{keys' values: [exact sum of each field]} in one query: SQL SUM on PostgreSQL (numeric),
    rows summed with exact_sum on SQLite (whose SUM is floating point)."""
    queryset = queryset.order_by()
    result: dict[tuple, list[Decimal]] = {}
    if connection.vendor == "postgresql":
        sums = {f"sum_{i}": Sum(name) for i, name in enumerate(fields)}
        for row in queryset.values_list(*keys).annotate(**sums):
            result[tuple(row[: len(keys)])] = [value or ZERO for value in row[len(keys) :]]
        return result
    grouped: dict[tuple, list[list[Decimal]]] = defaultdict(lambda: [[] for _ in fields])
    for row in queryset.values_list(*keys, *fields):
        for values, value in zip(grouped[tuple(row[: len(keys)])], row[len(keys) :], strict=True):
            values.append(value)
    for key, columns in grouped.items():
        result[key] = [exact_sum(values) for values in columns]
    return result


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first days of the months from `first`'s to `last`'s, both included."""
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def _local_start(day: dt.date) -> dt.datetime:
    """The instant a day starts in the project's time zone (a void's day, as postings dates it)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _amount(value: Decimal, currency: str) -> str:
    return f"{round_money(value, currency):f}"


# --- revenue by period × product × customer ----------------------------------------------------


@dataclass
class RevenueRow:
    product: str
    customer: str
    amounts: list[Decimal]  # one per month of the table

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, ZERO)


@dataclass
class RevenueTable:
    currency: str
    months: list[dt.date]
    rows: list[RevenueRow] = field(default_factory=list)

    @property
    def month_totals(self) -> list[Decimal]:
        return [sum((r.amounts[i] for r in self.rows), ZERO) for i in range(len(self.months))]

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.rows), ZERO)


def product_name(charge_name: str | None, plan_name: str | None, description: str) -> str:
    """A product as the reports name it: the obligation's charge and its plan ("Seats (Growth)"),
    the obligation's description when its charge is gone."""
    if charge_name:
        return f"{charge_name} ({plan_name})" if plan_name else charge_name
    return description


REVENUE_KEYS = (
    "obligation__contract__currency",
    "obligation__contract__customer_id",
    "obligation__contract__customer__name",
    "obligation__charge__name",
    "obligation__charge__plan__name",
    "obligation__description",
)


def revenue_movements(first: dt.date, last: dt.date) -> dict[tuple, Decimal]:
    """{(period start, currency, customer id, customer name, product): revenue} for the
    accounting periods from `first`'s month to `last`'s: the Revenue account's credits − debits,
    three grouped queries. Posted recognition lines count in the period their entry is posted
    in, under their contract's customer and their obligation's product; a reversed one counts
    negatively in its reversal's period; any other entry on Revenue (usage accrued before it is
    invoiced, a manual entry) counts under its lines' customer and "Journal: <kind>"."""
    start, end = month_start(first), add_months(month_start(last), 1)
    result: dict[tuple, Decimal] = defaultdict(Decimal)

    def add(period, currency, customer_id, customer, product, amount):
        result[(period, str(currency), customer_id, customer or "—", product)] += amount

    posted = RecognitionLine.objects.filter(
        entry__period__start__gte=start, entry__period__start__lt=end
    )
    for key, (amount,) in grouped_sums(
        posted, ("entry__period__start", *REVENUE_KEYS), ("amount",)
    ).items():
        period, currency, customer_id, customer, *product = key
        add(period, currency, customer_id, customer, product_name(*product), amount)
    reversed_ = RecognitionLine.objects.filter(
        entry__reversed_by__period__start__gte=start, entry__reversed_by__period__start__lt=end
    )
    for key, (amount,) in grouped_sums(
        reversed_, ("entry__reversed_by__period__start", *REVENUE_KEYS), ("amount",)
    ).items():
        period, currency, customer_id, customer, *product = key
        add(period, currency, customer_id, customer, product_name(*product), -amount)
    lines = RecognitionLine.objects.all()
    other = JournalLine.objects.filter(
        account__role=Account.Role.REVENUE,
        entry__period__start__gte=start,
        entry__period__start__lt=end,
    )
    other = other.exclude(Exists(lines.filter(entry=OuterRef("entry_id"))))
    other = other.exclude(Exists(lines.filter(entry__reversed_by=OuterRef("entry_id"))))
    keys = ("entry__period__start", "entry__currency", "customer_id", "customer__name")
    for key, (debit, credit) in grouped_sums(
        other, (*keys, "entry__kind"), ("debit", "credit")
    ).items():
        period, currency, customer_id, customer, kind = key
        add(period, currency, customer_id, customer, f"Journal: {kind}", credit - debit)
    return result


def revenue_by_month(
    first: dt.date, last: dt.date, *, customer_id: int | None = None, product: str | None = None
) -> list[RevenueTable]:
    """Per currency, a row per product and customer with its revenue in each month from
    `first`'s to `last`'s (accounting periods), sorted by product then customer; rows of nothing
    are left out. Filters: a customer (id), a product (its name as product_name gives it)."""
    months = months_between(first, last)
    index = {month: i for i, month in enumerate(months)}
    tables: dict[str, RevenueTable] = {}
    rows: dict[tuple, RevenueRow] = {}
    for (period, currency, cust_id, customer, name), amount in revenue_movements(
        first, last
    ).items():
        if customer_id is not None and cust_id != customer_id:
            continue
        if product is not None and name != product:
            continue
        table = tables.setdefault(currency, RevenueTable(currency=currency, months=months))
        row = rows.get((currency, name, cust_id))
        if row is None:
            row = rows[(currency, name, cust_id)] = RevenueRow(name, customer, [ZERO] * len(months))
            table.rows.append(row)
        row.amounts[index[period]] += amount
    result = []
    for currency in sorted(tables):
        table = tables[currency]
        table.rows = sorted(
            (r for r in table.rows if any(r.amounts)), key=lambda r: (r.product, r.customer)
        )
        result.append(table)
    return result


def revenue_csv_rows(tables: list[RevenueTable]) -> list[list[str]]:
    """currency, product, customer, one column per month (YYYY-MM), total; a Total row per
    currency."""
    months = tables[0].months if tables else []
    out = [["currency", "product", "customer", *(f"{m:%Y-%m}" for m in months), "total"]]
    for table in tables:
        c = table.currency
        for row in table.rows:
            out.append(
                [c, row.product, row.customer, *(_amount(a, c) for a in row.amounts)]
                + [_amount(row.total, c)]
            )
        out.append(
            [c, "Total", "", *(_amount(a, c) for a in table.month_totals), _amount(table.total, c)]
        )
    return out


def product_choices() -> list[str]:
    """The products of the obligations, as product_name names them (for the report's filter)."""
    names = PerformanceObligation.objects.values_list(
        "charge__name", "charge__plan__name", "description"
    ).distinct()
    return sorted({product_name(*row) for row in names})


def recognized_by_month(first: dt.date, last: dt.date) -> dict[tuple[dt.date, str], Decimal]:
    """{(period start, currency): revenue} from `first`'s month to `last`'s: the Revenue
    account's credits − debits per accounting period (revenue_by_month's column totals)."""
    lines = JournalLine.objects.filter(
        account__role=Account.Role.REVENUE,
        entry__period__start__gte=month_start(first),
        entry__period__start__lt=add_months(month_start(last), 1),
    )
    sums = grouped_sums(lines, ("entry__period__start", "entry__currency"), ("debit", "credit"))
    return {(p, str(c)): credit - debit for (p, c), (debit, credit) in sums.items()}


# --- the revenue waterfall ---------------------------------------------------------------------


@dataclass
class WaterfallRow:
    billed: dt.date | None  # the billing month (None: recognized, not billed yet)
    earlier: Decimal  # recognized before the table's first month
    amounts: list[Decimal]  # recognized in each month of the table

    @property
    def total(self) -> Decimal:
        return self.earlier + sum(self.amounts, ZERO)

    @property
    def label(self) -> str:
        return f"{self.billed:%b %Y}" if self.billed else NOT_BILLED


@dataclass
class Waterfall:
    currency: str
    months: list[dt.date]
    rows: list[WaterfallRow] = field(default_factory=list)

    @property
    def earlier(self) -> Decimal:
        return sum((row.earlier for row in self.rows), ZERO)

    @property
    def month_totals(self) -> list[Decimal]:
        return [sum((r.amounts[i] for r in self.rows), ZERO) for i in range(len(self.months))]

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.rows), ZERO)


def _contracted():
    """The subscriptions with a revenue contract (a subquery: one row each, however many
    contracts their renewals made)."""
    return RevenueContract.objects.values("subscription_id")


def _billing_months() -> dict[tuple[int, int], list[tuple]]:
    """{(subscription id, item position): [(issue date, period start, period end)] by issue
    date}: the lines of the finalized or paid invoices of the subscriptions with a revenue
    contract, one query."""
    lines = (
        InvoiceLine.objects.filter(
            invoice__status__in=BILLED,
            invoice__subscription_id__in=_contracted(),
            item__isnull=False,
        )
        .exclude(invoice__issue_date=None)
        .values_list(
            "invoice__subscription_id",
            "item__position",
            "invoice__issue_date",
            "period_start",
            "period_end",
        )
        .order_by("invoice__issue_date", "invoice_id", "pk")
    )
    billing: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for subscription_id, position, issued, start, end in lines:
        billing[(subscription_id, position)].append((issued, start, end))
    return billing


def billing_month(billing: list[tuple], month: dt.date) -> dt.date | None:
    """The issue month of the first invoice whose line for the obligation's item covers a day of
    `month` (None when no invoice has billed it yet)."""
    end = add_months(month, 1)
    for issued, start, stop in billing:
        if start < end and stop > month:
            return month_start(issued)
    return None


def waterfall(first: dt.date, last: dt.date) -> list[Waterfall]:
    """Per currency, recognized revenue by billing month (rows) and the accounting period it was
    recognized in (columns, from `first`'s month to `last`'s; what was recognized before is the
    `earlier` column, so a row's total is everything recognized of that month's billings up to
    `last`). A posted recognition line (obligation O, service month M) belongs to the issue
    month of the first finalized or paid invoice with a line for O's item (any version: the
    same position) whose service period covers a day of M; a line no invoice covers yet (a fee
    in arrears, recognized before it is billed) to "Not billed yet". A reversed line counts
    negatively in its reversal's period. Three queries."""
    start, end = month_start(first), add_months(month_start(last), 1)
    months = months_between(first, last)
    index = {month: i for i, month in enumerate(months)}
    keys = (
        "obligation__contract__currency",
        "obligation__contract__subscription_id",
        "obligation__position",
        "month",
    )
    cells: list[tuple] = []  # (period start, key, amount)
    posted = RecognitionLine.objects.filter(entry__period__start__lt=end)
    for (period, *key), (amount,) in grouped_sums(
        posted, ("entry__period__start", *keys), ("amount",)
    ).items():
        cells.append((period, key, amount))
    reversed_ = RecognitionLine.objects.filter(entry__reversed_by__period__start__lt=end)
    for (period, *key), (amount,) in grouped_sums(
        reversed_, ("entry__reversed_by__period__start", *keys), ("amount",)
    ).items():
        cells.append((period, key, -amount))
    billing = _billing_months() if cells else {}
    tables: dict[str, Waterfall] = {}
    rows: dict[tuple, WaterfallRow] = {}
    for period, (currency, subscription_id, position, month), amount in cells:
        currency = str(currency)
        billed = billing_month(billing.get((subscription_id, position), []), month)
        table = tables.setdefault(currency, Waterfall(currency=currency, months=months))
        row = rows.get((currency, billed))
        if row is None:
            row = rows[(currency, billed)] = WaterfallRow(billed, ZERO, [ZERO] * len(months))
            table.rows.append(row)
        if period < start:
            row.earlier += amount
        else:
            row.amounts[index[period]] += amount
    result = []
    for currency in sorted(tables):
        table = tables[currency]
        table.rows = sorted(
            (r for r in table.rows if r.total or any(r.amounts)),
            key=lambda r: (r.billed is None, r.billed or dt.date.min),
        )
        result.append(table)
    return result


def waterfall_csv_rows(tables: list[Waterfall]) -> list[list[str]]:
    """currency, billing_month (YYYY-MM, or "not_billed"), earlier, one column per recognition
    month, total; a Total row per currency."""
    months = tables[0].months if tables else []
    out = [["currency", "billing_month", "earlier", *(f"{m:%Y-%m}" for m in months), "total"]]
    for table in tables:
        c = table.currency
        for row in table.rows:
            billed = f"{row.billed:%Y-%m}" if row.billed else "not_billed"
            out.append(
                [c, billed, _amount(row.earlier, c), *(_amount(a, c) for a in row.amounts)]
                + [_amount(row.total, c)]
            )
        out.append(
            [c, "Total", _amount(table.earlier, c)]
            + [*(_amount(a, c) for a in table.month_totals), _amount(table.total, c)]
        )
    return out


# --- unbilled receivables ----------------------------------------------------------------------


@dataclass(frozen=True)
class UnbilledRow:
    customer_id: int | None
    customer: str
    currency: str
    account: Decimal  # the Unbilled receivable account's balance (debits − credits)
    ahead: Decimal  # fixed fees recognized ahead of billing: contracts' negative deferred revenue

    @property
    def total(self) -> Decimal:
        return self.account + self.ahead


def contracts_ahead_of_billing(as_of: dt.date) -> dict[tuple[int, int, str, str], Decimal]:
    """{(contract's subscription id, customer id, customer name, currency): amount} for the
    contracts that recognized more than they billed by `as_of`: recognized (posted recognition
    lines whose entry is dated on or before `as_of`, less reversals by then) − billed (the
    subtotals of the subscription's invoices issued by then and not voided by then, less their
    credit notes issued by then), when above zero. Four grouped queries."""
    ended = _local_start(as_of + dt.timedelta(days=1))
    recognized: dict[int, Decimal] = defaultdict(Decimal)
    who: dict[int, tuple] = {}
    keys = (
        "obligation__contract__subscription_id",
        "obligation__contract__customer_id",
        "obligation__contract__customer__name",
        "obligation__contract__currency",
    )
    posted = RecognitionLine.objects.filter(entry__entry_date__lte=as_of)
    for (sub, *rest), (amount,) in grouped_sums(posted, keys, ("amount",)).items():
        recognized[sub] += amount
        who[sub] = (sub, rest[0], rest[1], str(rest[2]))
    reversed_ = RecognitionLine.objects.filter(entry__reversed_by__entry_date__lte=as_of)
    for (sub, *_), (amount,) in grouped_sums(reversed_, keys, ("amount",)).items():
        recognized[sub] -= amount
    issued = Invoice.objects.filter(
        subscription_id__in=_contracted(), issue_date__lte=as_of
    ).exclude(status=Invoice.Status.DRAFT)
    issued = issued.filter(Q(voided_at=None) | Q(voided_at__gte=ended))
    billed: dict[int, Decimal] = defaultdict(Decimal)
    for (sub,), (amount,) in grouped_sums(issued, ("subscription_id",), ("subtotal",)).items():
        billed[sub] += amount
    notes = CreditNote.objects.filter(
        invoice__subscription_id__in=_contracted(), issue_date__lte=as_of
    )
    for (sub,), (amount,) in grouped_sums(
        notes, ("invoice__subscription_id",), ("subtotal",)
    ).items():
        billed[sub] -= amount
    return {
        who[sub]: amount - billed.get(sub, ZERO)
        for sub, amount in recognized.items()
        if sub in who and amount - billed.get(sub, ZERO) > 0
    }


def unbilled(as_of: dt.date) -> list[UnbilledRow]:
    """Per customer and currency, as of the end of `as_of`: the Unbilled receivable account's
    balance from its journal lines' customer (whatever posts there), and the fixed fees
    recognized ahead of billing (contracts_ahead_of_billing). Rows of nothing are left out;
    by currency, then customer."""
    lines = JournalLine.objects.filter(
        account__role=Account.Role.UNBILLED_RECEIVABLE, entry__entry_date__lte=as_of
    )
    figures: dict[tuple, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for (customer_id, name, currency), (debit, credit) in grouped_sums(
        lines, ("customer_id", "customer__name", "entry__currency"), ("debit", "credit")
    ).items():
        figures[(customer_id, name or "—", str(currency))][0] += debit - credit
    for (_, customer_id, name, currency), amount in contracts_ahead_of_billing(as_of).items():
        figures[(customer_id, name, currency)][1] += amount
    rows = [
        UnbilledRow(customer_id, name, currency, account, ahead)
        for (customer_id, name, currency), (account, ahead) in figures.items()
        if account or ahead
    ]
    return sorted(rows, key=lambda r: (r.currency, r.customer))


def totals_by_currency(rows, *names: str) -> dict[str, list[Decimal]]:
    """{currency: [sum of each named attribute]} over report rows that have a `currency`."""
    totals: dict[str, list[Decimal]] = {}
    for row in rows:
        sums = totals.setdefault(row.currency, [ZERO] * len(names))
        for i, name in enumerate(names):
            sums[i] += getattr(row, name)
    return dict(sorted(totals.items()))


def unbilled_csv_rows(rows: list[UnbilledRow]) -> list[list[str]]:
    out = [["currency", "customer", "unbilled_receivable_account", "recognized_ahead", "total"]]
    for row in rows:
        c = row.currency
        out.append(
            [c, row.customer, _amount(row.account, c), _amount(row.ahead, c)]
            + [_amount(row.total, c)]
        )
    for c, (account, ahead, total) in totals_by_currency(rows, "account", "ahead", "total").items():
        out.append([c, "Total", _amount(account, c), _amount(ahead, c), _amount(total, c)])
    return out


# --- remaining performance obligations ---------------------------------------------------------


@dataclass(frozen=True)
class RpoRow:
    customer_id: int
    customer: str
    currency: str
    next_12: Decimal  # to be recognized in the 12 months after the month (or overdue)
    beyond: Decimal  # later

    @property
    def total(self) -> Decimal:
        return self.next_12 + self.beyond


def remaining_obligations(month: dt.date) -> list[RpoRow]:
    """Per customer and currency, as of the end of `month`: the contracted revenue of fixed
    obligations (ratable, point in time) not recognized by then — their recognition lines not
    posted, or posted in an entry dated after the month's end — of the contracts in service by
    then or signed by then (their quote accepted). Lines of the 12 months after `month` (or of
    earlier months still unposted) are next_12, the later ones beyond. Usage is variable
    consideration, left out. One grouped query."""
    month = month_start(month)
    end = add_months(month, 1)
    horizon = add_months(month, 13)
    lines = RecognitionLine.objects.filter(obligation__kind__in=FIXED).filter(
        Q(entry=None) | Q(entry__entry_date__gte=end)
    )
    lines = lines.filter(
        Q(obligation__contract__start__lt=end)
        | Q(obligation__contract__quote__accepted_at__lt=_local_start(end))
    )
    keys = (
        "obligation__contract__customer_id",
        "obligation__contract__customer__name",
        "obligation__contract__currency",
        "month",
    )
    figures: dict[tuple, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for (customer_id, name, currency, line_month), (amount,) in grouped_sums(
        lines, keys, ("amount",)
    ).items():
        figures[(customer_id, name, str(currency))][0 if line_month < horizon else 1] += amount
    rows = [
        RpoRow(customer_id, name, currency, next_12, beyond)
        for (customer_id, name, currency), (next_12, beyond) in figures.items()
        if next_12 or beyond
    ]
    return sorted(rows, key=lambda r: (r.currency, r.customer))


def rpo_csv_rows(rows: list[RpoRow]) -> list[list[str]]:
    out = [["currency", "customer", "next_12_months", "beyond", "total"]]
    for row in rows:
        c = row.currency
        out.append(
            [c, row.customer, _amount(row.next_12, c), _amount(row.beyond, c)]
            + [_amount(row.total, c)]
        )
    for c, (next_12, beyond, total) in totals_by_currency(
        rows, "next_12", "beyond", "total"
    ).items():
        out.append([c, "Total", _amount(next_12, c), _amount(beyond, c), _amount(total, c)])
    return out
