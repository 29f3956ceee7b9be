"""Renewals: the quote that renews a subscription for another term, and the daily job that drafts
it ahead of the term's end and, for a subscription set to renew automatically, accepts it on the
term's last day.

A renewal quote restates the contract in force on the term's last day (the versions in force,
read back into quote lines: same charge, quantity, negotiated price, discount, tiers and ramp,
the ramp's phases at the same month offsets in the new term) with the uplift applied:

- the uplift is the customer's `renewal_uplift_percent`, else the plan's, else 0;
- on "net" (`Plan.renewal_uplift_on`): every price of the line is raised by the uplift — unit
  price, tiers' prices and flat fees, phases' prices and an amount discount — so every net price
  rises by the uplift and a percentage discount is kept;
- on "list": the price before discount is raised and the discount is kept as it is (a percentage
  off the raised price, an amount off it unchanged): the line still shows list and discount.
- Rounding: a raised price is rounded half-up to the currency's minor unit (cents) when the
  price before was a whole number of minor units (40.00 × 1.05 = 42.00, 33.33 × 1.05 = 35.00);
  a finer price (a usage price of 0.0015) keeps 12 decimal places, half-up, like every price.
- One-time fees and prepaid credits are not renewed. Package and percentage charges have no
  price on a quote line: they renew at their net terms' discount, without the uplift.

Acceptance (quotes.services.quote_accept) extends the subscription by the quote's term
(subscriptions.changes.subscription_renew): the new term starts the day the old one ends.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction

from catalog import rating
from core import clock
from core.errors import Conflict, ValidationError
from core.money import quantum
from quotes import pricing
from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier, QuoteStatusChange
from quotes.services import _check, _locked, _move, quote_accept, quote_decline
from quotes.totals import tiers_as_pricing
from subscriptions.changes import items_in_force
from subscriptions.models import Subscription, SubscriptionChange, SubscriptionItem

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
AUTO_REASON = "Renewed automatically at the term's end"
# Renewal quotes that still count for their term (a declined or expired one does not renew).
LIVE = Quote.OPEN | {Quote.Status.ACCEPTED}


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole months from `start` to `end` as add_months counts them."""
    return (end.year - start.year) * 12 + end.month - start.month


def last_term_start(subscription: Subscription) -> dt.date:
    """The first day of the term in progress: the last renewal's, else the subscription's."""
    renewal = (
        subscription.changes.filter(kind=SubscriptionChange.Kind.RENEWAL)
        .order_by("-effective_date", "-id")
        .first()
    )
    return renewal.effective_date if renewal else subscription.start_date


def uplift_of(subscription: Subscription) -> tuple[Decimal, str]:
    """(percent, "net" or "list"): the customer's uplift, else the plan's, else 0."""
    percent = subscription.customer.renewal_uplift_percent
    if percent is None:
        percent = subscription.plan.renewal_uplift_percent
    return (percent or ZERO), (subscription.plan.renewal_uplift_on or "net")


def uplift_note(percent: Decimal, on: str) -> str:
    if not percent:
        return "Renewal at the prices in force (no uplift)."
    text = f"{percent.normalize():f}"
    return f"Renewal with a {text}% uplift on {on} prices."


@dataclass
class Restated:
    """A line rebuilt from a version in force (unsaved), with its tiers and phases."""

    line: QuoteLine
    tiers: list[QuoteLineTier] = field(default_factory=list)
    phases: list[QuoteLinePhase] = field(default_factory=list)


def _plain(pricing_dict: dict) -> dict:
    """Pricing with every number as a Decimal (to compare terms written differently)."""

    def norm(value):
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                return Decimal(str(value)).normalize()
            except ArithmeticError:
                return value
        return value

    return norm(pricing_dict)


class _Reader:
    """Reads a version's net terms back into the quote line that would price it."""

    def __init__(self, quote: Quote, subscription: Subscription):
        self.quote = quote
        self.cents = quantum(str(subscription.currency))
        self.factor = max(
            subscription.billing_interval_months // quote.plan.billing_interval_months, 1
        )

    def _back(self, net: Decimal, divisor: Decimal, snap: bool) -> Decimal:
        value = net / divisor if divisor else net
        if snap:
            return value.quantize(self.cents, rounding=ROUND_HALF_UP)
        return Decimal(pricing.price(value))

    def restate(self, item: SubscriptionItem, term_start: dt.date) -> Restated:
        # The first reading rounds to cents (prices are typed in cents); if it does not price
        # the version exactly, the exact one (12 decimals) is kept.
        exact = None
        for snap in (True, False):
            restated = self._restate(item, term_start, snap)
            if self._prices_as(restated, item):
                return restated
            exact = restated
        return exact

    def _divisor(self, item, percent):
        keep = (HUNDRED - percent) / HUNDRED if percent else Decimal(1)
        per = Decimal(1) if item.is_usage else Decimal(self.factor)
        return keep * per, keep

    def _restate(self, item: SubscriptionItem, term_start: dt.date, snap: bool) -> Restated:
        terms = item.pricing
        model = rating.pricing_model(terms, strict=False)
        percent = item.discount_percent
        amount = item.discount_amount
        divisor, keep = self._divisor(item, percent)
        line = QuoteLine(
            quote=self.quote,
            kind=QuoteLine.Kind.USAGE if item.is_usage else QuoteLine.Kind.RECURRING,
            charge=item.charge,
            description=item.name,
            quantity=item.quantity,
            discount_percent=percent,
            discount_amount=amount,
            position=item.position,
        )
        per = Decimal(1) if item.is_usage else Decimal(self.factor)

        def unit_price_of(net_terms: dict) -> Decimal | None:
            net = rating.pricing_value(net_terms, "unit_price", None)
            if net is None:
                return None
            if keep == 0:  # 100 % off: the price before the discount is the list price
                listed = rating.pricing_value(item.list_pricing or {}, "unit_price", None)
                return self._back(listed or ZERO, per, snap)
            if amount:
                return self._back(net / per + amount, keep, snap)
            return self._back(net, divisor, snap)

        if model.unit_price:
            line.unit_price = unit_price_of(terms)
        restated = Restated(line)
        if model.tiered and keep:
            for position, tier in enumerate(terms.get("tiers") or []):
                up_to = tier.get("up_to")
                restated.tiers.append(
                    QuoteLineTier(
                        up_to=None if up_to in (None, "") else Decimal(str(up_to)),
                        unit_price=self._back(
                            rating.pricing_value(tier, "unit_price"), divisor, snap
                        ),
                        flat_fee=self._back(rating.pricing_value(tier, "flat_fee"), divisor, snap),
                        position=position,
                    )
                )
        if item.is_usage and rating.pricing_value(terms, "min_amount", None) is not None:
            months = Decimal(self.quote.interval)
            line.minimum_amount = self._back(
                rating.pricing_value(terms, "min_amount"), months, snap
            )
        phases = [p for p in item.phases or [] if dt.date.fromisoformat(p["end"]) > term_start]
        for number, phase in enumerate(phases):
            start = dt.date.fromisoformat(phase["start"])
            end = dt.date.fromisoformat(phase["end"])
            restated.phases.append(
                QuoteLinePhase(
                    start_month=1 if number == 0 else months_between(term_start, start) + 1,
                    end_month=months_between(term_start, end),
                    quantity=Decimal(str(phase["quantity"])),
                    unit_price=unit_price_of(phase["pricing"]) if model.unit_price else None,
                )
            )
        return restated

    def _prices_as(self, restated: Restated, item: SubscriptionItem) -> bool:
        line = restated.line
        tiers = tiers_as_pricing(restated.tiers)
        if _plain(pricing.net_pricing(line, tiers=tiers)) != _plain(item.pricing):
            return False
        stored_phases = (item.phases or [])[-len(restated.phases) :] if restated.phases else []
        for phase, stored in zip(restated.phases, stored_phases, strict=True):
            as_phase = pricing.Phase(
                phase.start_month, phase.end_month, phase.quantity, phase.unit_price
            )
            if _plain(pricing.net_pricing(line, phase=as_phase)) != _plain(stored["pricing"]):
                return False
        return True


def _raise(value: Decimal | None, factor: Decimal, cents: Decimal) -> Decimal | None:
    """A price raised by the uplift: to the cent when it was in cents, else 12 decimals."""
    if value is None:
        return None
    raised = value * factor
    if value == value.quantize(cents):
        return raised.quantize(cents, rounding=ROUND_HALF_UP)
    return Decimal(pricing.price(raised))


def _uplift(restated: Restated, percent: Decimal, on: str, cents: Decimal) -> None:
    if not percent:
        return
    factor = 1 + percent / HUNDRED
    line = restated.line
    line.unit_price = _raise(line.unit_price, factor, cents)
    if on == "net":
        line.discount_amount = _raise(line.discount_amount, factor, cents)
    for tier in restated.tiers:
        tier.unit_price = _raise(tier.unit_price, factor, cents)
        tier.flat_fee = _raise(tier.flat_fee, factor, cents)
    for phase in restated.phases:
        phase.unit_price = _raise(phase.unit_price, factor, cents)


def renewal_quote_of(subscription: Subscription) -> Quote | None:
    """The renewal quote of the term in progress still in play (open or accepted), if any."""
    return (
        Quote.objects.filter(
            contract=subscription,
            kind=Quote.Kind.RENEWAL,
            start_date=subscription.term_end_date,
            status__in=LIVE,
        )
        .order_by("-version", "-id")
        .first()
    )


@transaction.atomic
def renewal_quote_create(*, subscription: Subscription, by=None, today=None) -> Quote:
    """Draft the quote renewing `subscription` for another term at the terms in force on the
    term's last day, with the uplift (module docstring). Refused for a subscription that is not
    live, whose term has ended, or that already has a renewal quote for this term."""
    today = today or clock.today()
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("customer", "plan")
        .get(pk=subscription.pk)
    )
    if subscription.status != Subscription.Status.ACTIVE or subscription.canceled_on:
        state = "cancelled" if subscription.canceled_on else subscription.get_status_display()
        raise Conflict(
            f"Subscription {subscription.external_id} is {state.lower()}: only a live "
            "subscription is renewed."
        )
    end = subscription.term_end_date
    if today >= end:
        raise Conflict(
            f"The term of {subscription.external_id} ended on {end}: quote a new subscription "
            "instead of a renewal."
        )
    existing = renewal_quote_of(subscription)
    if existing is not None:
        raise Conflict(
            f"Subscription {subscription.external_id} already has renewal quote "
            f"{existing.number} ({existing.get_status_display().lower()}) for the term from {end}."
        )
    term_start = last_term_start(subscription)
    last_day = end - dt.timedelta(days=1)
    percent, on = uplift_of(subscription)
    origin = Quote.objects.filter(subscription=subscription).select_related("owner").first()
    quote = Quote.objects.create(
        kind=Quote.Kind.RENEWAL,
        contract=subscription,
        customer=subscription.customer,
        plan=subscription.plan,
        owner=origin.owner if origin and origin.owner_id else by,
        title=f"Renewal of {subscription.external_id}",
        start_date=end,
        term_months=months_between(term_start, end),
        billing_interval_months=subscription.billing_interval_months,
        payment_terms_days=subscription.payment_terms_days,
        auto_renew=subscription.renewal == Subscription.Renewal.RENEW,
        valid_until=last_day,
        base_revision=subscription.revision,
        notes=uplift_note(percent, on),
    )
    reader = _Reader(quote, subscription)
    for item in items_in_force(subscription, last_day):
        if item.charge_id is None:
            raise ValidationError(
                f"'{item.name}' of {subscription.external_id} has no catalog charge any more: "
                "its renewal cannot be quoted from the contract; quote it by hand."
            )
        restated = reader.restate(item, term_start)
        _uplift(restated, percent, on, reader.cents)
        restated.line.save()
        for child in restated.tiers + restated.phases:
            child.line = restated.line
            child.save()
    QuoteStatusChange.objects.create(
        quote=quote,
        from_status=Quote.Status.DRAFT,
        to_status=Quote.Status.DRAFT,
        by=by if by is not None and by.is_authenticated else None,
        at=clock.now(),
        reason=f"Renewal of {subscription.external_id} drafted. {quote.notes}",
    )
    return quote


@transaction.atomic
def renewal_accept_automatically(*, quote: Quote) -> Quote:
    """Accept a renewal quote at the term's end because nobody did. Approval rules do not block
    it: it restates terms already approved and signed, with the contract's uplift; the move to
    approved is recorded with the reason."""
    quote = _locked(quote)
    if quote.status in (Quote.Status.DRAFT, Quote.Status.IN_REVIEW):
        _check(quote)
        _move(quote, Quote.Status.APPROVED, by=None, reason=f"{AUTO_REASON} (no approval needed).")
        quote.save(update_fields=["status"])
    return quote_accept(quote=quote, by=None, reason=AUTO_REASON)


@dataclass
class RenewalRunResult:
    created: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def renewals_run(*, today: dt.date | None = None) -> RenewalRunResult:
    """The daily job: draft the renewal quote of each live subscription whose term ends within
    RENEWAL_NOTICE_DAYS (once per term), and on a term's last day accept the renewal of a
    subscription set to renew automatically. Subscriptions set to end are left to end (billing
    ends them). One subscription's failure is logged and reported, never stops the others."""
    today = today or clock.today()
    result = RenewalRunResult()
    horizon = today + dt.timedelta(days=settings.RENEWAL_NOTICE_DAYS)
    live = Subscription.objects.filter(
        status=Subscription.Status.ACTIVE, canceled_on__isnull=True
    ).select_related("customer", "plan")
    for subscription in live.iterator():
        end = subscription.term_end_date
        if not today < end <= horizon:
            continue
        try:
            _renew_one(subscription, today, result)
        except Exception as exc:  # one subscription must not stop everyone else's renewal
            logger.exception("renewal of %s failed", subscription.external_id)
            result.failed[subscription.external_id] = getattr(exc, "message", None) or repr(exc)
    logger.info(
        "renewals run %s: %d quotes drafted, %d renewed, %d failed",
        today,
        len(result.created),
        len(result.renewed),
        len(result.failed),
    )
    return result


def _draft(subscription: Subscription, today: dt.date, result: RenewalRunResult) -> Quote:
    """Draft the renewal quote; a run at the same time that drafted it first is no failure."""
    try:
        quote = renewal_quote_create(subscription=subscription, today=today)
    except Conflict:
        quote = renewal_quote_of(subscription)
        if quote is None:
            raise
        return quote
    result.created.append(quote.number)
    return quote


def _renew_one(subscription: Subscription, today: dt.date, result: RenewalRunResult) -> None:
    end = subscription.term_end_date
    quote = renewal_quote_of(subscription)
    if (
        quote is None
        and not Quote.objects.filter(
            contract=subscription, kind=Quote.Kind.RENEWAL, start_date=end
        ).exists()
    ):
        quote = _draft(subscription, today, result)
    if today < end - dt.timedelta(days=1) or subscription.renewal != Subscription.Renewal.RENEW:
        return  # not the last day yet, or left to end (billing ends it)
    if quote is None:  # every quote of this term was declined or expired: a fresh one
        quote = _draft(subscription, today, result)
    if quote.status == Quote.Status.ACCEPTED:
        return
    if quote.base_revision != subscription.revision:  # the contract changed since it was drafted
        quote_decline(
            quote=quote,
            reason="The contract changed since this renewal was drafted: replaced by a renewal "
            "of the contract in force.",
        )
        quote = _draft(subscription, today, result)
    try:
        renewal_accept_automatically(quote=quote)
    except Conflict:
        quote.refresh_from_db()
        if quote.status == Quote.Status.ACCEPTED:  # a run at the same time renewed it
            return
        raise
    result.renewed.append(subscription.external_id)
