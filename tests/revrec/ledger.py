"""Shared helpers of the ledger tests: a balanced entry, a closed period."""

import datetime as dt
import importlib
from decimal import Decimal

from revrec.ledger import Line, period_for, post_entry
from revrec.models import Account, AccountingPeriod

D = Decimal


def chart() -> None:
    """The chart the migration seeds (a transactional test's flush empties it)."""
    for code, name, kind, role in importlib.import_module("revrec.migrations.0003_ledger").CHART:
        Account.objects.get_or_create(
            role=role, defaults={"code": code, "name": name, "type": kind}
        )


def post(
    source: str,
    on: str,
    amount: str,
    *,
    kind="invoice",
    debit="accounts_receivable",
    credit="deferred_revenue",
    currency="USD",
    memo=None,
):
    """A two-line entry: Dr `debit` / Cr `credit` of `amount`, dated `on`."""
    chart()
    return post_entry(
        kind=kind,
        source=source,
        on=dt.date.fromisoformat(on),
        memo=memo or f"{kind} {source}",
        currency=currency,
        lines=[Line(role=debit, debit=D(amount)), Line(role=credit, credit=D(amount))],
    )


def closed(month: str) -> AccountingPeriod:
    """The month's period (YYYY-MM), closed directly (the checklist is tested elsewhere)."""
    period = period_for(dt.date.fromisoformat(f"{month}-01"))
    AccountingPeriod.objects.filter(pk=period.pk).update(status=AccountingPeriod.Status.CLOSED)
    period.refresh_from_db()
    return period


def schedule(obligation) -> dict[str, Decimal]:
    """An obligation's recognition lines, {"2026-01": amount} by month."""
    return {f"{line.month:%Y-%m}": line.amount for line in obligation.lines.order_by("month")}
