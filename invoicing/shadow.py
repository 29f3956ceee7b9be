"""Shadow billing: the whole billing run as of a date, through the same code, saving nothing.

A shadow run as of D plans the run as the billing run on D does (invoicing.run.billing_plan) and
builds each chunk with the billing run's own code (invoicing.run.build_chunk: the billing dates on
or before D that have no invoice yet, each invoice by builder.build_invoice), without its lock and
without saving. It is a pure read: no row is written or locked. What a real run writes
and later dates read is followed in memory
instead — the prepaid balances drawn by an earlier date of the same run, and its unsaved lines,
which count as invoiced when a later date looks for late usage. So a shadow run as of D reports
the invoices that the billing run on D would make, line for line, if nothing changes in between.

The report is a CSV, one row per line; given the invoice totals finance expects (a CSV of
customer, subscription, billing_date, total), it lists every difference.
"""

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from core.errors import ValidationError
from core.money import plain, round_money
from invoicing.builder import BuiltInvoice
from invoicing.run import billing_plan, build_chunk
from subscriptions.models import Subscription

logger = logging.getLogger(__name__)

CSV_COLUMNS = [
    "customer",
    "subscription",
    "billing_date",
    "period_start",
    "period_end",
    "kind",
    "description",
    "quantity",
    "amount",
    "invoice_subtotal",
    "invoice_tax",
    "invoice_total",
]
EXPECTED_COLUMNS = ["customer", "subscription", "billing_date", "total"]


@dataclass(frozen=True)
class ShadowRun:
    as_of: dt.date
    invoices: list[BuiltInvoice]  # unsaved, in the billing run's order
    subscriptions_seen: int
    failed: dict[str, str]  # external id → what went wrong

    @property
    def total(self) -> Decimal:
        return sum((built.invoice.total for built in self.invoices), Decimal(0))


def subscription_shadow_bill(*, subscription: Subscription, today: dt.date) -> list[BuiltInvoice]:
    """What invoicing.services.subscription_bill would make on `today`, built and not saved."""
    bills = build_chunk([subscription.pk], today, lock=False, strict=True)
    return bills[0].invoices if bills else []


def shadow_billing(*, as_of: dt.date) -> ShadowRun:
    """Every invoice the billing run on `as_of` would make (see the module docstring): the same
    plan and the same chunks (invoicing.run), built and not saved."""
    invoices, seen, failed = [], 0, {}
    for chunk in billing_plan(as_of):
        seen += len(chunk)
        for bill in build_chunk(chunk, as_of, lock=False):
            invoices += bill.invoices
            if bill.error:  # as the billing run: one bad subscription does not stop it
                failed[bill.subscription.external_id] = bill.error
    return ShadowRun(as_of=as_of, invoices=invoices, subscriptions_seen=seen, failed=failed)


# --- the report --------------------------------------------------------------------------------


def _amount(value: Decimal, currency: str) -> str:
    return str(round_money(value, currency))


def shadow_rows(run: ShadowRun) -> list[dict[str, str]]:
    """One row per invoice line, with its invoice's totals (CSV_COLUMNS)."""
    rows = []
    for built in run.invoices:
        invoice, currency = built.invoice, built.invoice.currency
        for line in built.lines:
            rows.append(
                {
                    "customer": invoice.customer.external_id,
                    "subscription": invoice.subscription.external_id,
                    "billing_date": invoice.billing_date.isoformat(),
                    "period_start": line.period_start.isoformat(),
                    "period_end": line.period_end.isoformat(),
                    "kind": str(line.kind),
                    "description": line.description,
                    "quantity": plain(line.quantity),
                    "amount": _amount(line.amount, currency),
                    "invoice_subtotal": _amount(invoice.subtotal, currency),
                    "invoice_tax": _amount(invoice.tax_amount, currency),
                    "invoice_total": _amount(invoice.total, currency),
                }
            )
    return rows


def shadow_csv(run: ShadowRun) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(shadow_rows(run))
    return out.getvalue()


@dataclass(frozen=True)
class Difference:
    customer: str
    subscription: str
    billing_date: dt.date
    problem: str  # "missing" (expected, not billed), "extra" (billed, not expected), "total"
    expected: Decimal | None
    shadow: Decimal | None

    @property
    def delta(self) -> Decimal | None:
        if self.expected is None or self.shadow is None:
            return None
        return self.shadow - self.expected

    def __str__(self) -> str:
        what = f"{self.customer} {self.subscription} {self.billing_date}"
        if self.problem == "missing":
            return f"missing: {what} expected {plain(self.expected)}, the run bills nothing"
        if self.problem == "extra":
            return f"extra: {what} billed {plain(self.shadow)}, not expected"
        sign = "+" if self.delta > 0 else ""
        return (
            f"total: {what} expected {plain(self.expected)}, the run bills {plain(self.shadow)} "
            f"({sign}{plain(self.delta)})"
        )


Key = tuple[str, str, dt.date]


def read_expected(text: str) -> dict[Key, Decimal]:
    """The expected totals: a CSV with the columns customer, subscription, billing_date (ISO)
    and total (a decimal). Raises ValidationError naming the line that is wrong."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in EXPECTED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError(
            f"The expected CSV needs the columns {', '.join(EXPECTED_COLUMNS)}; "
            f"{', '.join(missing)} missing from its header."
        )
    expected: dict[Key, Decimal] = {}
    for number, row in enumerate(reader, start=2):
        try:
            key = (
                row["customer"].strip(),
                row["subscription"].strip(),
                dt.date.fromisoformat(row["billing_date"].strip()),
            )
            total = Decimal(row["total"].strip())
            if not total.is_finite():
                raise InvalidOperation
        except (ValueError, InvalidOperation, AttributeError) as exc:
            raise ValidationError(
                f"Line {number} of the expected CSV is not customer, subscription, a date "
                f"(YYYY-MM-DD) and a total (e.g. 1223.23): {row}."
            ) from exc
        if key in expected:
            raise ValidationError(
                f"Line {number} of the expected CSV repeats {key[0]} {key[1]} "
                f"{key[2]}: one total per invoice."
            )
        expected[key] = total
    return expected


def shadow_differences(run: ShadowRun, expected: dict[Key, Decimal]) -> list[Difference]:
    """Every invoice whose total differs from the expected one, and every invoice expected and
    not made or made and not expected, sorted by customer, subscription and date."""
    billed: dict[Key, Decimal] = {
        (
            b.invoice.customer.external_id,
            b.invoice.subscription.external_id,
            b.invoice.billing_date,
        ): (b.invoice.total)
        for b in run.invoices
    }
    differences = []
    for key in sorted(expected.keys() | billed.keys()):
        want, got = expected.get(key), billed.get(key)
        if want is not None and got is not None and want == got:
            continue
        problem = "missing" if got is None else "extra" if want is None else "total"
        differences.append(Difference(*key, problem=problem, expected=want, shadow=got))
    return differences
