"""The finance dashboard's revenue tiles. config.dashboard adds them to reporting's admin home
(reporting does not import revrec). Each tile links to its report and shows its figure in the
dashboard's currency; amounts in other currencies are listed apart, never converted."""

import datetime as dt
from decimal import Decimal

from django.urls import reverse

from core.formatting import format_money
from core.periods import add_months, month_start
from revrec import reports
from revrec.selectors import account_balances

ZERO = Decimal(0)


def _value(amounts: dict[str, Decimal], currency: str) -> str:
    return format_money(amounts.get(currency, ZERO), currency)


def _others(amounts: dict[str, Decimal], currency: str) -> str:
    """'also €1,200.00 (not converted)' for the other currencies' amounts; '' without any."""
    rest = [format_money(v, c) for c, v in sorted(amounts.items()) if c != currency and v]
    return f"also {', '.join(rest)} (not converted)" if rest else ""


def _tile(title: str, amounts: dict, currency: str, note: str, href: str) -> dict:
    return {
        "title": title,
        "value": _value(amounts, currency),
        "note": note,
        "others": _others(amounts, currency),
        "href": href,
    }


def revenue_tiles(as_of: dt.date, currency: str) -> list[dict]:
    """Revenue recognized last month and this year (the Revenue account per accounting period),
    the Deferred revenue balance, unbilled receivables and the remaining performance obligations
    (next 12 months, and in all) as of the end of this month. A fixed number of queries."""
    this_month = month_start(as_of)
    last_month = add_months(this_month, -1)
    year = this_month.replace(month=1)
    by_month = reports.recognized_by_month(min(year, last_month), this_month)
    last: dict[str, Decimal] = {}
    ytd: dict[str, Decimal] = {}
    for (month, code), amount in by_month.items():
        if month == last_month:
            last[code] = last.get(code, ZERO) + amount
        if month >= year:
            ytd[code] = ytd.get(code, ZERO) + amount
    balances = account_balances(as_of=as_of)
    deferred = {c: v for (role, c), v in balances.items() if role == "deferred_revenue"}
    unbilled = {
        c: sums[2]
        for c, sums in reports.totals_by_currency(
            reports.unbilled(as_of), "account", "ahead", "total"
        ).items()
    }
    rpo = reports.totals_by_currency(
        reports.remaining_obligations(this_month), "next_12", "beyond", "total"
    )
    revenue_href = reverse("revrec-revenue-report")
    year_href = f"{revenue_href}?start={year:%Y-%m}&end={this_month:%Y-%m}"
    return [
        _tile(
            f"Revenue recognized in {last_month:%B}",
            last,
            currency,
            f"recognized in the {last_month:%B %Y} period",
            f"{revenue_href}?start={last_month:%Y-%m}&end={last_month:%Y-%m}",
        ),
        _tile(
            f"Revenue recognized in {year:%Y}",
            ytd,
            currency,
            f"{year:%B} to {this_month:%B}, by accounting period",
            year_href,
        ),
        _tile(
            "Deferred revenue",
            deferred,
            currency,
            f"billed, not recognized yet, on {as_of:%b %-d}",
            reverse("admin:revrec_journalentry_deferred_rollforward"),
        ),
        _tile(
            "Unbilled receivables",
            unbilled,
            currency,
            f"recognized, not invoiced yet, on {as_of:%b %-d}",
            reverse("revrec-unbilled"),
        ),
        _tile(
            "Remaining obligations, next 12 months",
            {c: sums[0] for c, sums in rpo.items()},
            currency,
            f"fixed fees not recognized by the end of {this_month:%B} (usage excluded)",
            reverse("revrec-rpo"),
        ),
        _tile(
            "Remaining obligations, total",
            {c: sums[2] for c, sums in rpo.items()},
            currency,
            "contracted, not recognized yet: fixed fees",
            reverse("revrec-rpo"),
        ),
    ]
