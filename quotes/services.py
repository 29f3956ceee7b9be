from decimal import Decimal

from django.db import transaction

from catalog import rating
from catalog.selectors import charges_in_force
from core import clock
from core.errors import Conflict, ValidationError
from core.money import round_money
from quotes.models import Quote, QuoteLine
from subscriptions.services import ItemSpec, subscription_create


def quote_populate_lines(*, quote: Quote, replace: bool = False) -> Quote:
    """Give a quote without lines one line per charge of its plan, at catalog prices.

    With replace, a draft's lines are first removed (its plan changed)."""
    if replace and quote.status == Quote.Status.DRAFT:
        quote.lines.all().delete()
    if quote.lines.exists():
        return quote
    problem = quote.currency_problem()
    if problem:
        raise ValidationError(problem)
    charges = charges_in_force(
        plan=quote.plan, currency=str(quote.customer.currency), on=quote.start_date
    )
    QuoteLine.objects.bulk_create(
        QuoteLine(
            quote=quote,
            charge=charge,
            description=charge.name,
            quantity=charge.default_quantity,
            unit_price=charge.unit_price if charge.pricing_model.unit_price else None,
            position=charge.position,
        )
        for charge in charges
    )
    return quote


def line_pricing(line: QuoteLine) -> dict:
    """The line's price terms: the charge's, with the negotiated unit price where it has one."""
    pricing = line.charge.pricing()
    if line.unit_price is not None and rating.pricing_model(pricing, strict=False).unit_price:
        pricing["unit_price"] = str(line.unit_price)
    return pricing


def quote_recurring_total(*, quote: Quote, lines: list[QuoteLine] | None = None) -> Decimal:
    """What the fixed fees come to per billing period (usage is priced per unit, not totalled).

    `lines`: the quote's lines when the caller already read them (a list of quotes), else read."""
    if lines is None:
        lines = quote.lines.select_related("charge").prefetch_related("charge__tiers")
    return sum(
        (
            round_money(rating.rate(line_pricing(line), line.quantity).amount, quote.currency)
            for line in lines
            if not line.charge.is_usage
        ),
        Decimal(0),
    )


def _transition(quote: Quote, target: str) -> None:
    if target not in Quote.TRANSITIONS[quote.status]:
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}; it cannot become "
            f"{Quote.Status(target).label.lower()}."
        )
    quote.status = target


@transaction.atomic
def quote_mark_sent(*, quote: Quote) -> Quote:
    quote = Quote.objects.select_for_update().get(pk=quote.pk)
    if not quote.lines.exists():
        raise ValidationError(
            f"Quote {quote.number} has no lines: add at least one before sending."
        )
    _transition(quote, Quote.Status.SENT)
    quote.save(update_fields=["status"])
    return quote


@transaction.atomic
def quote_decline(*, quote: Quote) -> Quote:
    quote = Quote.objects.select_for_update().get(pk=quote.pk)
    _transition(quote, Quote.Status.DECLINED)
    quote.save(update_fields=["status"])
    return quote


@transaction.atomic
def quote_expire(*, quote: Quote) -> Quote:
    quote = Quote.objects.select_for_update().get(pk=quote.pk)
    _transition(quote, Quote.Status.EXPIRED)
    quote.save(update_fields=["status"])
    return quote


def quotes_expire_overdue(*, today=None) -> int:
    """Expire every draft or sent quote whose validity has passed (the daily task)."""
    today = today or clock.today()
    overdue = Quote.objects.filter(
        status__in=[Quote.Status.DRAFT, Quote.Status.SENT], valid_until__lt=today
    )
    for quote in overdue:
        quote_expire(quote=quote)
    return len(overdue)


@transaction.atomic
def quote_accept(*, quote: Quote) -> Quote:
    """Accept the quote and create its subscription — in one transaction, exactly once."""
    quote = Quote.objects.select_for_update().select_related("customer", "plan").get(pk=quote.pk)
    if quote.status == Quote.Status.ACCEPTED:
        raise Conflict(
            f"Quote {quote.number} was already accepted: it created subscription "
            f"{quote.subscription.external_id}."
        )
    _transition(quote, Quote.Status.ACCEPTED)
    if quote.valid_until < clock.today():
        raise ValidationError(
            f"Quote {quote.number} expired on {quote.valid_until}: extend its validity or make a "
            f"new quote before accepting."
        )
    lines = list(quote.lines.select_related("charge"))
    if not lines:
        raise ValidationError(
            f"Quote {quote.number} has no lines: there is nothing to subscribe to."
        )
    quote.subscription = subscription_create(
        customer=quote.customer,
        plan=quote.plan,
        external_id=quote.subscription_external_id
        or f"sub_{quote.customer.external_id}_{quote.pk}",
        start_date=quote.start_date,
        term_months=quote.term_months,
        items=[
            ItemSpec(
                charge=line.charge,
                quantity=line.quantity,
                unit_price=line.unit_price,
                name=line.description,
            )
            for line in lines
        ],
    )
    quote.accepted_at = clock.now()
    quote.save(update_fields=["status", "subscription", "accepted_at"])
    return quote
