"""Accounts receivable aging and days sales outstanding (DSO), as of any past date.

The open amount of an invoice on a date is what Invoice.open_amount was on that date: its total
minus its credit notes issued by then (less the parts of them that went to the customer's credit
balance by then), minus the payments applied by then (PaymentAllocation.applied_on, un-applied
rows counting against), minus the credit balance applied by then, minus write-offs by then,
never below zero. An invoice counts once issued (issue_date on or before the date); a void one
counts until the day it was voided. Open amounts are bucketed by the days past due on the date:
current (not yet due: 0 days or fewer), then settings.AGING_BUCKETS (1–30, 31–60, 61–90,
91–120), then over the last one.

Unapplied credit on the date is the customer's credit balance then: the CreditBalanceEntry rows
effective by then (payments' money on account, credit notes beyond what was left to pay,
invoices below zero, less what was applied and refunded). So a customer's balance is

    balance = open amounts − unapplied credit
            = invoices issued − credit notes − payments received (not reversed) + refunds
              − write-offs                                            (all as of the date)

A few queries whatever the number of invoices. On PostgreSQL the open amounts are computed and
bucketed in SQL (AGING_SQL: numeric, exact) from the invoices' stored sums less the rows dated
after the date, then a query for the credit balances and one for the customers' names; on SQLite,
whose SUM() is floating point, the dated rows themselves are read and summed in Python with
exact_sum (_figures_in_python, the definition above, which tests hold AGING_SQL to).
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

from core.money import exact_sum, round_money
from core.periods import add_months
from customers.models import Customer
from invoicing.models import CreditBalanceEntry, CreditNote, Invoice
from receivables.models import PaymentAllocation, WriteOff

ZERO = Decimal(0)
# The credit balance entries that settle an invoice or give back what settled it.
BALANCE_ON_INVOICES = (CreditBalanceEntry.Kind.APPLIED, CreditBalanceEntry.Kind.CREDIT_NOTE)


def bucket_labels(buckets: tuple[int, ...]) -> list[str]:
    """["Current", "1–30", "31–60", "61–90", "91–120", "Over 120"] for (30, 60, 90, 120)."""
    labels, low = ["Current"], 1
    for high in buckets:
        labels.append(f"{low}–{high}")
        low = high + 1
    labels.append(f"Over {buckets[-1]}" if buckets else "Past due")
    return labels


def bucket_index(days_past_due: int, buckets: tuple[int, ...]) -> int:
    """0 for current (days ≤ 0), 1 for 1..buckets[0], …, len(buckets) + 1 past the last."""
    if days_past_due <= 0:
        return 0
    for i, high in enumerate(buckets):
        if days_past_due <= high:
            return i + 1
    return len(buckets) + 1


@dataclass(frozen=True)
class AgingRow:
    """One customer in one currency (or, in AgingReport.totals, all customers: customer_id None).
    `buckets` are the open amounts by age (bucket_labels); `open` their sum; `unapplied_credit`
    what the customer has on account; `balance` = open − unapplied_credit."""

    customer_id: int | None
    customer: str
    currency: str
    buckets: tuple[Decimal, ...]
    open: Decimal
    unapplied_credit: Decimal
    balance: Decimal
    open_invoices: int


@dataclass(frozen=True)
class AgingReport:
    as_of: dt.date
    labels: list[str]
    rows: list[AgingRow]  # by customer name, then currency
    totals: list[AgingRow] = field(default_factory=list)  # one per currency

    def open_total(self, currency: str) -> Decimal:
        return next((t.open for t in self.totals if t.currency == currency), ZERO)


def counted_invoices(as_of: dt.date):
    """The invoices that exist for receivables on the date: issued by then, and not voided by
    then (an invoice voided on Mar 5 counts on Mar 4, not on Mar 5)."""
    issued = [Invoice.Status.FINALIZED, Invoice.Status.PAID]
    return Invoice.objects.filter(issue_date__lte=as_of).filter(
        Q(status__in=issued) | Q(status=Invoice.Status.VOID, voided_at__date__gt=as_of)
    )


def _sums(queryset, *keys: str, value: str = "amount") -> dict:
    """{key (a tuple for several keys): sum of value}: SQL SUM on PostgreSQL (exact), exact_sum
    in Python elsewhere."""
    if connection.vendor == "postgresql":
        rows = queryset.order_by().values_list(*keys).annotate(total=Sum(value))
    else:
        grouped: dict = defaultdict(list)
        for *key, amount in queryset.order_by().values_list(*keys, value):
            grouped[tuple(key)].append(amount)
        rows = [(*key, exact_sum(amounts)) for key, amounts in grouped.items()]
    return {(tuple(key) if len(keys) > 1 else key[0]): total for *key, total in rows}


# One row per customer, currency and bucket: the open amounts and the number of invoices open.
# Invoice, payment and credit rows never leave the database.
#
# An invoice's open amount on a date is its stored open amount (Invoice.open_amount's figures:
# total − credited + credit_to_balance − paid − written_off, which the services keep equal to the
# sums of its dated rows) with the rows dated AFTER the date taken back out: credit notes issued
# later (+), payments applied later (+, un-applies −), credit applied later (its negative rows, +),
# credit notes' parts sent to the balance later (−), write-offs later (+). That is exactly the
# open amount from the rows dated on or before the date (total − credit notes + parts sent to the
# balance − payments − credit applied − write-offs), read in one pass over the few rows dated
# after it (indexed by date: migrations invoicing 0009 and receivables 0005_aging_indexes) instead
# of every row; those of invoices issued after the date are dropped before grouping (as of a year
# ago, most of the later rows).
# A paid invoice has nothing open now (invoicing.balance.invoice_settle derives the status:
# paid ⇔ nothing open), so one with nothing dated after the date had nothing open then: only the
# open and void invoices (a partial index) and the paid ones with rows after the date are read.
AGING_SQL = """
WITH later AS (
    SELECT l.invoice_id, l.s
    FROM (
        SELECT invoice_id, total AS s FROM {credit_note} WHERE issue_date > %(as_of)s
        UNION ALL
        SELECT invoice_id, amount FROM {allocation}
        WHERE applied_on > %(as_of)s AND invoice_id IS NOT NULL
        UNION ALL
        SELECT invoice_id, -amount FROM {entry}
        WHERE effective_on > %(as_of)s AND kind IN ('applied', 'credit_note')
        UNION ALL
        SELECT invoice_id, amount FROM {write_off} WHERE written_off_on > %(as_of)s
    ) l JOIN {invoice} li ON li.id = l.invoice_id
    WHERE li.issue_date <= %(as_of)s
), undone AS (
    SELECT invoice_id, SUM(s) AS s FROM later GROUP BY invoice_id
), counted AS (
    SELECT i.customer_id, i.currency,
           i.total - i.credited_amount + i.credit_to_balance - i.paid_amount
             - i.written_off_amount + COALESCE(u.s, 0) AS left_,
           %(as_of)s::date - COALESCE(i.due_date, i.issue_date) AS days
    FROM {invoice} i LEFT JOIN undone u ON u.invoice_id = i.id
    WHERE i.status IN ('finalized', 'void') AND i.issue_date <= %(as_of)s
      AND (i.status = 'finalized' OR i.voided_at >= %(next_day)s)
    UNION ALL
    SELECT i.customer_id, i.currency,
           i.total - i.credited_amount + i.credit_to_balance - i.paid_amount
             - i.written_off_amount + u.s AS left_,
           %(as_of)s::date - COALESCE(i.due_date, i.issue_date) AS days
    FROM undone u JOIN {invoice} i ON i.id = u.invoice_id
    WHERE i.status = 'paid' AND i.issue_date <= %(as_of)s
)
SELECT customer_id, currency, {bucket} AS bucket, SUM(GREATEST(left_, 0)),
       COUNT(*) FILTER (WHERE left_ > 0)
FROM counted GROUP BY 1, 2, 3
"""


def _day_start(day: dt.date) -> dt.datetime:
    """The first instant of the day in the current time zone (what `voided_at__date__gt` compares
    to): its midnight, or the end of a gap at midnight (fold 0 takes the offset before it)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=timezone.get_current_timezone())


def _figures_in_sql(as_of: dt.date, buckets: tuple[int, ...]) -> list[tuple]:
    cases = " ".join(f"WHEN days <= {int(high)} THEN {i + 1}" for i, high in enumerate(buckets))
    sql = AGING_SQL.format(
        invoice=Invoice._meta.db_table,
        credit_note=CreditNote._meta.db_table,
        allocation=PaymentAllocation._meta.db_table,
        entry=CreditBalanceEntry._meta.db_table,
        write_off=WriteOff._meta.db_table,
        bucket=f"CASE WHEN days <= 0 THEN 0 {cases} ELSE {len(buckets) + 1} END",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"as_of": as_of, "next_day": _day_start(as_of + dt.timedelta(days=1))})
        return cursor.fetchall()


def _figures_in_python(as_of: dt.date, buckets: tuple[int, ...]) -> list[tuple]:
    """AGING_SQL's rows from the dated rows on or before the date (not the stored sums), summed
    with exact_sum (SQLite's SUM() is floating point). Rows whose amount and count are both zero
    may differ from AGING_SQL's (it leaves out the invoices with nothing open)."""
    invoices = counted_invoices(as_of)
    counted_ids = invoices.values("id")
    settled = [
        _sums(
            PaymentAllocation.objects.filter(applied_on__lte=as_of, invoice__in=counted_ids),
            "invoice_id",
        ),
        _sums(
            WriteOff.objects.filter(written_off_on__lte=as_of, invoice__in=counted_ids),
            "invoice_id",
        ),
        _sums(
            CreditNote.objects.filter(issue_date__lte=as_of, invoice__in=counted_ids),
            "invoice_id",
            value="total",
        ),
    ]
    # Credit applied (negative) and credit notes' parts sent to the balance (positive).
    from_balance = _sums(
        CreditBalanceEntry.objects.filter(
            effective_on__lte=as_of, invoice__in=counted_ids, kind__in=BALANCE_ON_INVOICES
        ),
        "invoice_id",
    )
    figures: dict = {}
    rows = invoices.order_by().values_list(
        "id", "customer_id", "currency", "total", "issue_date", "due_date"
    )
    for invoice_id, customer_id, currency, total, issued, due in rows:
        left = total - exact_sum(s.get(invoice_id, ZERO) for s in settled)
        left += from_balance.get(invoice_id, ZERO)
        bucket = bucket_index((as_of - (due or issued)).days, buckets)
        row = figures.setdefault((customer_id, currency, bucket), [ZERO, 0])
        row[0] += max(left, ZERO)
        row[1] += left > 0
    return [(*key, *values) for key, values in figures.items()]


def credit_on(as_of: dt.date) -> dict[tuple[int, str], Decimal]:
    """{(customer id, currency): credit balance on the date} (entries effective by then)."""
    entries = CreditBalanceEntry.objects.filter(effective_on__lte=as_of)
    sums = _sums(entries, "customer_id", "currency")
    return {
        (customer_id, str(currency)): amount for (customer_id, currency), amount in sums.items()
    }


def ar_aging(*, as_of: dt.date, buckets: tuple[int, ...] | None = None) -> AgingReport:
    """Open amounts per customer and currency as they were on `as_of`, by age; see the module."""
    buckets = tuple(settings.AGING_BUCKETS if buckets is None else buckets)
    if connection.vendor == "postgresql":
        figures = _figures_in_sql(as_of, buckets)
    else:
        figures = _figures_in_python(as_of, buckets)
    credit = credit_on(as_of)
    ages: dict = defaultdict(lambda: [ZERO] * (len(buckets) + 2))
    counts: dict = defaultdict(int)
    for customer_id, currency, bucket, open_, count in figures:
        key = (customer_id, str(currency))
        ages[key][bucket] += open_
        counts[key] += count
    ids = {customer_id for customer_id, _ in set(ages) | set(credit)}
    names = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "name"))

    report_rows = []
    quanta = {currency: round_money(ZERO, currency) for _, currency in set(ages) | set(credit)}
    for customer_id, currency in set(ages) | set(credit):
        key = (customer_id, currency)
        cent = quanta[currency]  # round_money, its quantum looked up once per currency
        amounts = tuple(
            a.quantize(cent, ROUND_HALF_UP) for a in ages.get(key, [ZERO] * (len(buckets) + 2))
        )
        unapplied = credit.get(key, ZERO).quantize(cent, ROUND_HALF_UP)
        open_ = exact_sum(amounts)
        if not open_ and not unapplied:
            continue
        report_rows.append(
            AgingRow(
                customer_id,
                names[customer_id],
                currency,
                amounts,
                open_,
                unapplied,
                open_ - unapplied,
                counts.get(key, 0),
            )
        )
    report_rows.sort(key=lambda r: (r.customer.lower(), r.customer_id, r.currency))
    totals = []
    for currency in sorted({r.currency for r in report_rows}):
        mine = [r for r in report_rows if r.currency == currency]
        totals.append(
            AgingRow(
                None,
                "Total",
                currency,
                tuple(exact_sum(r.buckets[i] for r in mine) for i in range(len(buckets) + 2)),
                exact_sum(r.open for r in mine),
                exact_sum(r.unapplied_credit for r in mine),
                exact_sum(r.balance for r in mine),
                sum(r.open_invoices for r in mine),
            )
        )
    return AgingReport(as_of, bucket_labels(buckets), report_rows, totals)


def aging_csv_rows(report: AgingReport) -> list[list[str]]:
    """The page's table as CSV rows: a header, one row per customer and currency, the totals."""
    header = ["customer", "currency", *report.labels, "open", "unapplied_credit", "balance"]
    out = [header]
    for row in [*report.rows, *report.totals]:
        out.append(
            [
                row.customer,
                row.currency,
                *(str(a) for a in row.buckets),
                str(row.open),
                str(row.unapplied_credit),
                str(row.balance),
            ]
        )
    return out


# --- DSO ---------------------------------------------------------------------------------------


class DsoMethod:
    SIMPLE = "simple"
    COUNTBACK = "countback"


@dataclass(frozen=True)
class Dso:
    """Days sales outstanding per currency (None where there were no sales to measure by).
    `receivables` is the open amount at `end` (ar_aging's open, before unapplied credit); `sales`
    the credit sales (issued invoices' totals) from `start` to `end`, both days included."""

    method: str
    start: dt.date
    end: dt.date
    days: dict[str, Decimal | None]
    receivables: dict[str, Decimal]
    sales: dict[str, Decimal]


COUNTBACK_MONTHS = (
    36  # how far back the countback walks before giving up (AR beyond 3 years' sales)
)
ONE_DECIMAL = Decimal("0.1")


def _sales(start: dt.date, end: dt.date, as_of: dt.date) -> dict[str, Decimal]:
    issued = counted_invoices(as_of).filter(issue_date__gte=start, issue_date__lte=end)
    return {str(c): v for c, v in _sums(issued, "currency", value="total").items()}


def dso(*, start: dt.date, end: dt.date, method: str = DsoMethod.COUNTBACK) -> Dso:
    """DSO over [start, end] (both days included), per currency, to one decimal, half-up.

    simple: AR at end ÷ credit sales in the period × days in the period.
    countback: from `end`, walk back month by month (Nov 1–30, then Oct 1–31 for an end on Nov 30;
    Oct 16–Nov 15, then Sep 16–Oct 15 for an end on Nov 15), taking each month's sales off the AR
    and counting its days while the AR is more than the month's sales; the month that uses it up
    adds AR left ÷ that month's sales × its days. The period's start plays no part. See
    docs/receivables.md, "Aging and DSO", for a worked example.
    """
    if method not in (DsoMethod.SIMPLE, DsoMethod.COUNTBACK):
        raise ValueError(f"Unknown DSO method {method!r}: use 'simple' or 'countback'.")
    receivables = {t.currency: t.open for t in ar_aging(as_of=end).totals}
    sales = _sales(start, end, end)
    days: dict[str, Decimal | None] = {}
    if method == DsoMethod.SIMPLE:
        period_days = (end - start).days + 1
        for currency in sorted(set(receivables) | set(sales)):
            sold = sales.get(currency, ZERO)
            ar = receivables.get(currency, ZERO)
            days[currency] = (
                (ar / sold * period_days).quantize(ONE_DECIMAL, ROUND_HALF_UP) if sold > 0 else None
            )
        return Dso(method, start, end, days, receivables, sales)

    after_end = end + dt.timedelta(days=1)
    months = [
        (add_months(after_end, -k), add_months(after_end, -k + 1) - dt.timedelta(days=1))
        for k in range(1, COUNTBACK_MONTHS + 1)
    ]
    earliest = months[-1][0]
    monthly: dict = defaultdict(lambda: defaultdict(list))
    rows = (
        counted_invoices(end)
        .filter(issue_date__gte=earliest, issue_date__lte=end)
        .order_by()
        .values_list("currency", "issue_date", "total")
    )
    for currency, issued, total in rows:
        k = next(i for i, (first, last) in enumerate(months) if first <= issued <= last)
        monthly[str(currency)][k].append(total)
    for currency in sorted(set(receivables) | set(sales)):
        left = receivables.get(currency, ZERO)
        counted = ZERO
        result: Decimal | None = None
        if left <= 0:
            result = ZERO
        for k, (first, last) in enumerate(months):
            if result is not None:
                break
            month_days = (last - first).days + 1
            sold = exact_sum(monthly[currency].get(k, []))
            if sold > 0 and left <= sold:
                result = counted + left / sold * month_days
            else:
                left -= max(sold, ZERO)
                counted += month_days
        days[currency] = None if result is None else result.quantize(ONE_DECIMAL, ROUND_HALF_UP)
    return Dso(method, start, end, days, receivables, sales)
