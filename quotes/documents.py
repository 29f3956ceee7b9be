"""The quote as the customer reads it: the PDF a rep sends and the portal's quote page.

`quote_document(quote)` gathers what both show — seller and customer, the lines grouped (recurring
fees, usage with its tiers in words, one-time fees, prepaid credits), ramp phases, discounts and the
totals (quotes.totals) — and `quote_pdf(quote)` renders templates/quotes/quote_pdf.html with
WeasyPrint. Every price is the line's net terms from quotes.pricing, so the document says what the
subscription will bill; amounts are formatted by core.formatting (the `money` template filters).
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string
from weasyprint import HTML

from catalog import rating
from catalog.pricing_display import terms_in_words
from core import clock
from core.formatting import format_price
from core.money import round_money
from core.periods import add_months
from quotes import pricing
from quotes.models import Quote, QuoteLine
from quotes.totals import NO_EXTRAS, quote_totals, read_extras

ZERO = Decimal(0)
PERIOD_WORDS = {1: "month", 3: "quarter", 6: "half-year", 12: "year"}


def period_word(months: int) -> str:
    return PERIOD_WORDS.get(months, f"{months} months")


@dataclass
class PhaseRow:
    months: str
    quantity: Decimal
    unit_price: Decimal | None  # net, per billing period; None for a tiered fee
    amount: Decimal  # per billing period


@dataclass
class DocumentLine:
    line: QuoteLine
    unit: str
    quantity: Decimal
    list_price: Decimal | None  # per unit and billing period (None: not priced by a unit price)
    net_price: Decimal | None
    discount: str  # "10 %", "$2.00 per seat", ""
    amount: Decimal  # per billing period, first period (one-time: the fee)
    amount_last: Decimal
    total: Decimal  # over the term: committed + estimated
    words: list[str] = field(default_factory=list)  # terms in words (usage, tiered fees)
    phases: list[PhaseRow] = field(default_factory=list)
    estimated_quantity: Decimal | None = None  # per month
    minimum: Decimal | None = None  # per month
    list_words: list[str] = field(default_factory=list)  # catalog terms when tiers were negotiated
    negotiated: bool = False


def _discount_text(line: QuoteLine, currency: str, unit: str) -> str:
    if line.discount_percent:
        return f"{line.discount_percent.normalize():f} %"
    if line.discount_amount:
        return f"{format_price(line.discount_amount, currency)} per {unit}"
    return ""


def _rated(terms: dict, quantity: Decimal, currency: str) -> Decimal:
    return round_money(rating.rate(terms, quantity).amount, currency)


def _document_line(line, figures, extras, *, currency: str, period: str) -> DocumentLine:
    unit = line.charge.unit_name if line.charge_id else "unit"
    net_terms = pricing.net_pricing(line, tiers=extras.tiers)
    list_terms = pricing.period_list_pricing(line)
    model = rating.pricing_model(net_terms, strict=False)
    row = DocumentLine(
        line=line,
        unit=unit,
        quantity=line.quantity,
        list_price=rating.pricing_value(list_terms, "unit_price") if model.unit_price else None,
        net_price=rating.pricing_value(net_terms, "unit_price") if model.unit_price else None,
        discount=_discount_text(line, currency, unit),
        amount=figures.net_first,
        amount_last=figures.net_last,
        total=figures.net_total,
    )
    if pricing.is_usage(line) or not model.unit_price:
        row.words = terms_in_words(net_terms, currency, unit=unit, period=period)
    if pricing.is_usage(line):
        row.estimated_quantity = line.estimated_quantity
        row.minimum = line.minimum_amount
        row.negotiated = bool(extras.tiers)
        if extras.tiers:
            row.list_words = [
                w
                for w in terms_in_words(list_terms, currency, unit=unit, period=period)
                if not w.endswith(":")
            ]
    if extras.phases:  # the first phase's terms; the ramp table shows them all
        first = extras.phases[0]
        row.quantity = first.quantity
        if model.unit_price:
            row.net_price = rating.pricing_value(
                pricing.net_pricing(line, phase=first), "unit_price"
            )
    for phase in extras.phases:
        terms = pricing.net_pricing(line, phase=phase)
        row.phases.append(
            PhaseRow(
                months=f"{phase.start_month}–{phase.end_month}",
                quantity=phase.quantity,
                unit_price=rating.pricing_value(terms, "unit_price") if model.unit_price else None,
                amount=_rated(terms, phase.quantity, currency),
            )
        )
    return row


def quote_document(quote: Quote) -> dict:
    """What the PDF and the portal's quote page show (a template context)."""
    lines = list(quote.lines.select_related("charge").prefetch_related("charge__tiers"))
    extras = read_extras(lines)
    totals = quote_totals(quote, lines, extras)
    currency = quote.currency
    period = period_word(quote.interval)
    groups = {kind: [] for kind in QuoteLine.Kind.values}
    for figures in totals.lines:
        line = figures.line
        row = _document_line(
            line, figures, extras.get(line.pk, NO_EXTRAS), currency=currency, period=period
        )
        groups[line.kind].append(row)
    ramped = [row for row in groups[QuoteLine.Kind.RECURRING] if row.phases]
    customer = quote.customer
    return {
        "quote": quote,
        "company": settings.BILLING_COMPANY,
        "customer": customer,
        "currency": currency,
        "period": period,
        "interval": quote.get_billing_interval_months_display()
        if quote.billing_interval_months
        else dict(Quote.Interval.choices).get(quote.interval, f"Every {quote.interval} months"),
        "recurring": groups[QuoteLine.Kind.RECURRING],
        "usage": groups[QuoteLine.Kind.USAGE],
        "one_time": groups[QuoteLine.Kind.ONE_TIME],
        "credits": groups[QuoteLine.Kind.CREDIT],
        "ramped": ramped,
        "totals": totals,
        "discount_percent": totals.discount_percent.quantize(Decimal("0.1")),
        "end_date": _end_date(quote),
        "renewal_heading": _renewal_heading(quote),
        "amendment_title": _amendment_title(quote),
        "today": clock.today(),
        "owner_name": _person(quote.owner),
        "owner_email": quote.owner.email if quote.owner else "",
    }


def _end_date(quote: Quote):
    if quote.kind == Quote.Kind.AMENDMENT and quote.contract_id:
        return quote.contract.end_date - dt.timedelta(days=1)  # co-termed
    return add_months(quote.start_date, quote.term_months) - dt.timedelta(days=1)


def _renewal_heading(quote: Quote) -> str:
    """A renewal's title: "Renewal of subscription sub_acme, Aug 1, 2026 – Jan 31, 2027"."""
    if quote.kind != Quote.Kind.RENEWAL or quote.contract_id is None:
        return ""
    return (
        f"Renewal of subscription {quote.contract.external_id}, "
        f"{quote.start_date:%b %-d, %Y} – {_end_date(quote):%b %-d, %Y}"
    )


def _amendment_title(quote: Quote) -> str:
    if quote.kind != Quote.Kind.AMENDMENT or not quote.contract_id:
        return ""
    day = quote.effective_date
    return (
        f"Amendment to subscription {quote.contract.external_id}, "
        f"effective {day:%b} {day.day}, {day.year}"
    )


def _person(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def quote_html(quote: Quote) -> str:
    return render_to_string("quotes/quote_pdf.html", quote_document(quote))


def quote_pdf(quote: Quote) -> bytes:
    return HTML(string=quote_html(quote)).write_pdf()


def quote_filename(quote: Quote) -> str:
    return f"{quote.number.replace(' ', '-')}.pdf"
