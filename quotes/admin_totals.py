"""The quote page's totals panel: its figures as a template reads them, from the saved quote
(the page) or from the change form's unsaved data (the endpoint the page's script posts to).

Nothing here saves: the endpoint builds the admin's form and line formset from the POST like a
save would, takes the valid lines' instances (the saved lines of the other pages as they are),
and rates them with quotes.totals."""

from dataclasses import dataclass
from decimal import Decimal

from core.formatting import format_money
from quotes.models import Quote, QuoteLine
from quotes.totals import QuoteTotals, quote_totals

ZERO = Decimal(0)
PER_LINE_TABLE = 100  # lines listed in the panel's per-line table, at most


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    value: str
    help: str = ""


def _percent(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')).normalize():f} %"


def panel_context(quote: Quote, totals: QuoteTotals, problems: list[str] | None = None) -> dict:
    """What templates/admin/quotes/quote/totals.html shows."""
    cur = totals.currency
    formatted: dict[Decimal, str] = {}

    def money(amount):
        # Formatting is the panel's main cost on a long quote; lines repeat their amounts
        if amount not in formatted:
            formatted[amount] = format_money(amount, cur)
        return formatted[amount]

    figures = [
        Figure("mrr_first", "MRR, month 1", money(totals.mrr_first), "recurring fees per month"),
        Figure("mrr_full", "MRR at full ramp", money(totals.mrr_full), "the last period's"),
        Figure("arr", "ARR", money(totals.arr), "12 × MRR at full ramp"),
        Figure("first_year", "First-year total", money(totals.first_year), "committed"),
        Figure("acv", "ACV", money(totals.acv), "committed per year, without one-time fees"),
        Figure("tcv", "TCV (committed)", money(totals.tcv), f"over {quote.term_months} months"),
        Figure(
            "estimated_usage",
            "Estimated usage",
            money(totals.estimated_usage),
            "beyond commitments, not committed",
        ),
        Figure("one_time", "One-time fees", money(totals.one_time)),
        Figure("credits", "Prepaid credits", money(totals.credits)),
        Figure("list_total", "List total", money(totals.list_total), "at catalog prices"),
        Figure(
            "discount",
            "Total discount",
            f"{money(totals.discount)} ({_percent(totals.discount_percent)})",
            "against list",
        ),
    ]
    # A long quote's lines show their figures in their own columns, a page at a time
    shown = totals.lines if len(totals.lines) <= PER_LINE_TABLE else []
    lines = [
        {
            "name": f.line.name,
            "kind": QuoteLine.Kind(f.line.kind).label,
            "list_period": money(f.list_first),
            "net_period": money(f.net_first),
            "net_last": money(f.net_last) if f.net_last != f.net_first else "",
            "list_total": money(f.list_total),
            "net_total": money(f.net_total),
            "discount": _percent(f.discount_percent) if f.discount_percent else "",
        }
        for f in shown
    ]
    return {
        "quote": quote,
        "totals": totals,
        "figures": figures,
        "lines": lines,
        "problems": problems or [],
        "months": totals.months,
        "lines_left_out": len(totals.lines) - len(shown),
    }


def posted_lines(quote: Quote, formset) -> tuple[list[QuoteLine], list[str]]:
    """The lines as the change form has them now: the posted page's valid rows (deleted ones left
    out, new ones added) and the quote's other saved lines as they are; and the invalid rows'
    problems ("Line 3 · Unit price: …"), whose saved version (if any) is counted instead."""
    posted, deleted, new, problems = {}, set(), [], []
    for number, form in enumerate(formset.forms, start=1):
        pk = form.instance.pk
        valid = form.is_valid()
        if formset.can_delete and form.data.get(form.add_prefix("DELETE")) in ("on", "true", "1"):
            if pk:
                deleted.add(pk)
            continue
        if not pk and not form.has_changed():
            continue  # an empty extra row
        if not valid:
            for field, errors in form.errors.items():
                label = form.fields[field].label if field in form.fields else "Line"
                problems += [f"Line {number} · {label}: {error}" for error in errors]
            continue
        if pk:
            posted[pk] = form.instance
        else:
            new.append(form.instance)
    saved = quote.lines.select_related("charge").prefetch_related("charge__tiers")
    lines = [posted.get(line.pk, line) for line in saved if line.pk not in deleted]
    return lines + new, problems


def totals_for(quote: Quote, lines: list[QuoteLine]) -> QuoteTotals:
    return quote_totals(quote, lines)
