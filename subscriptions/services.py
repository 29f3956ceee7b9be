import datetime as dt
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from catalog import rating
from catalog.models import BillableMetric, Charge, Plan
from catalog.selectors import charges_in_force
from core import clock
from core.errors import ValidationError
from core.formatting import format_money, format_quantity
from core.money import round_money
from core.periods import Period, billing_periods, proration_fraction
from customers.models import Customer
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionItem


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of a ramp: from `start` up to (not including) `end`, `quantity` at `pricing`
    (the phase's net terms, the same shape as `Charge.pricing()`)."""

    start: dt.date
    end: dt.date
    quantity: Decimal
    pricing: dict


@dataclass(frozen=True)
class CreditSpec:
    """A prepaid credit granted with the contract: money (no metric) or units of a metric."""

    amount: Decimal
    metric: BillableMetric | None = None
    note: str = ""


@dataclass(frozen=True)
class ItemSpec:
    """What the contract says about one item: quantity and (optionally) negotiated net terms.

    `charge` may be None only for a one-time fee, which then needs a `name` and a `pricing`.
    `pricing` is the full net price terms (discounts included; it overrides the charge's terms
    and `unit_price`); `list_pricing`, `discount_percent` and `discount_amount` (per unit, off the
    unit price) are kept only to show the customer the list price beside the net one. `phases`
    is a ramp over the whole term (fixed fees only); `one_time` bills the item once, on the first
    invoice.
    """

    charge: Charge | None
    quantity: Decimal
    unit_price: Decimal | None = None
    name: str = ""
    _: KW_ONLY
    pricing: dict | None = None
    list_pricing: dict | None = None
    discount_percent: Decimal | None = None
    discount_amount: Decimal | None = None
    phases: Sequence[PhaseSpec] = ()
    one_time: bool = False

    @property
    def label(self) -> str:
        return self.name or (self.charge.name if self.charge else "one-time fee")


def _plain_data(value):
    """A pricing dict as JSON: every number a decimal string, as `Charge.pricing()` writes it."""
    if isinstance(value, dict):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_data(v) for v in value]
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value)
    return value


# Every number of a pricing dict that is money (or a rate) and so can never be below zero.
_PRICE_KEYS = (
    "unit_price",
    "package_price",
    "package_size",
    "free_units",
    "rate",
    "fixed_fee",
    "free_events",
    "min_per_event",
    "max_per_event",
    "min_amount",
    "max_amount",
)


def _validated_pricing(pricing: dict, *, label: str, charge: Charge | None) -> dict:
    """Refuse net terms the rating engine cannot read (or that charge less than nothing) with a
    message naming the item; return them as plain JSON data."""
    if not isinstance(pricing, dict):
        raise ValidationError(f"The price terms of '{label}' must be a pricing dict.")
    pricing = _plain_data(pricing)
    try:
        model = rating.pricing_model(pricing, strict=True)
    except ValidationError as exc:
        raise ValidationError(f"'{label}': {exc.message}") from exc
    if charge is not None and model.name != charge.charge_model:
        raise ValidationError(
            f"'{label}' is a {charge.charge_model} charge: its price terms cannot be "
            f"{model.name}; keep the charge's model."
        )
    for key in _PRICE_KEYS:
        try:
            value = rating.pricing_value(pricing, key, None)
        except ArithmeticError as exc:
            raise ValidationError(
                f"The {key.replace('_', ' ')} of '{label}' is not a number: {pricing[key]!r}."
            ) from exc
        if value is not None and (not value.is_finite() or value < 0):
            raise ValidationError(f"The {key.replace('_', ' ')} of '{label}' cannot be negative.")
    if model.tiered:
        problems = rating.tier_problems(pricing.get("tiers") or [])
        if problems:
            raise ValidationError(f"The tiers of '{label}': {' '.join(problems)}")
    if not model.on_amounts:
        try:  # the engine's own checks (package size, min above cap, …)
            rating.rate(pricing, Decimal(0))
        except (ValidationError, ArithmeticError) as exc:
            message = getattr(exc, "message", str(exc))
            raise ValidationError(f"The price terms of '{label}': {message}") from exc
    return pricing


def _snapshot_pricing(spec: ItemSpec) -> dict:
    if spec.pricing is not None:
        return _validated_pricing(spec.pricing, label=spec.label, charge=spec.charge)
    pricing = spec.charge.pricing()
    if spec.unit_price is not None:
        if spec.unit_price < 0:
            raise ValidationError(f"The price of '{spec.charge.name}' cannot be negative.")
        if not rating.pricing_model(pricing, strict=False).unit_price:
            raise ValidationError(
                f"'{spec.charge.name}' is priced by its {spec.charge.get_charge_model_display()} "
                "terms, not by a unit price: leave its price empty."
            )
        pricing["unit_price"] = str(spec.unit_price)
    return pricing


def _snapshot_phases(spec: ItemSpec, periods: list[Period]) -> list[dict]:
    """A ramp's phases as stored, after checking they cover the term exactly, in order, and
    change only where a billing period starts (a period is billed at one price)."""
    if not spec.phases:
        return []
    label = spec.label
    if spec.one_time:
        raise ValidationError(f"'{label}' is a one-time fee: it is billed once and has no ramp.")
    if spec.charge is not None and spec.charge.is_usage:
        raise ValidationError(
            f"'{label}' is usage: a ramp is for fixed fees (platform fee, seats); give the "
            "usage item its negotiated price instead."
        )
    start, end = periods[0].start, periods[-1].end
    boundaries = {p.start for p in periods} | {end}
    phases, cursor = [], start
    for number, phase in enumerate(spec.phases, start=1):
        if phase.end <= phase.start:
            raise ValidationError(
                f"Phase {number} of '{label}' ends on {phase.end}, not after its start "
                f"{phase.start}."
            )
        if phase.start > cursor:
            raise ValidationError(
                f"Phase {number} of '{label}' starts on {phase.start} but "
                + ("the term starts" if number == 1 else "the phase before ends")
                + f" on {cursor}: the days in between would have no price."
            )
        if phase.start < cursor:
            raise ValidationError(
                f"Phase {number} of '{label}' starts on {phase.start}, before "
                + ("the term starts" if number == 1 else "the phase before ends")
                + f" ({cursor}): phases must follow each other without overlap."
            )
        for bound in (phase.start, phase.end):
            if bound not in boundaries:
                raise ValidationError(
                    f"Phase {number} of '{label}' changes on {bound}, inside a billing period: "
                    "a phase must start and end where a billing period does "
                    f"({', '.join(sorted(str(b) for b in boundaries))})."
                )
        if phase.quantity < 0:
            raise ValidationError(
                f"The quantity of phase {number} of '{label}' cannot be negative."
            )
        pricing = _validated_pricing(
            phase.pricing, label=f"{label}, phase {number}", charge=spec.charge
        )
        phases.append(
            {
                "start": phase.start.isoformat(),
                "end": phase.end.isoformat(),
                "quantity": str(phase.quantity),
                "pricing": pricing,
            }
        )
        cursor = phase.end
    if cursor != end:
        raise ValidationError(
            f"The phases of '{label}' end on {cursor} but the term ends on {end}: the phases "
            "must cover the whole term."
        )
    return phases


@transaction.atomic
def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    start_date: dt.date,
    term_months: int,
    items: Sequence[ItemSpec] | None = None,
    billing_interval_months: int | None = None,
    credits: Sequence[CreditSpec] = (),
    payment_terms_days: int | None = None,
) -> Subscription:
    """Create a subscription, snapshot its prices and quantities, and lay out its billing schedule.

    The subscription is billed in the customer's currency, which the plan must be sold in.
    `items` defaults to the plan's charges in that currency in force on the start date, at
    catalog prices and default quantities. A plan's trial makes its first days free: the
    schedule stays anchored on the start date and billing begins when the trial ends.
    `billing_interval_months` (default: the plan's) sets the length of the billing periods;
    `credits` are prepaid credits granted on the start date; `payment_terms_days` (default:
    the customer's) sets its invoices' due dates.
    """
    external_id = external_id.strip()
    currency = _validate_terms(
        customer=customer,
        plan=plan,
        external_id=external_id,
        term_months=term_months,
        billing_interval_months=billing_interval_months,
    )
    interval = billing_interval_months or plan.billing_interval_months
    if items is None:
        items = [
            ItemSpec(charge=c, quantity=c.default_quantity)
            for c in charges_in_force(plan=plan, currency=currency, on=start_date)
        ]
    _validate_items(items, plan=plan, currency=currency)
    if interval != plan.billing_interval_months:
        _validate_own_interval(items, plan=plan, interval=interval)
    periods = billing_periods(start_date, term_months, interval)
    trial_end = _trial_end(plan, start_date, periods)
    rows = [_item_row(spec, position, periods) for position, spec in enumerate(items)]
    subscription = _subscription_insert(
        external_id=external_id,
        customer=customer,
        plan=plan,
        currency=currency,
        start_date=start_date,
        trial_end_date=trial_end,
        term_months=term_months,
        billing_interval_months=interval,
        payment_terms_days=payment_terms_days,
    )
    for row in rows:
        row.subscription = subscription
    created = SubscriptionItem.objects.bulk_create(rows)
    _schedule_create(subscription, created, periods, trial_end)
    _credits_grant(subscription, credits)
    return subscription


def _validate_terms(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    term_months: int,
    billing_interval_months: int | None = None,
) -> str:
    """Refuse a missing or taken external id, a plan not sold in the customer's currency and a
    term that is not whole billing intervals; return the currency billed."""
    if not external_id:
        raise ValidationError("A subscription needs an external id (the id usage events carry).")
    if Subscription.objects.filter(external_id=external_id).exists():
        raise ValidationError(f"A subscription with external id '{external_id}' already exists.")
    currency = str(customer.currency)
    if currency not in plan.currencies:
        raise ValidationError(
            f"Plan '{plan.code}' is sold in {', '.join(plan.currencies)} but {customer} is billed "
            f"in {currency}: choose a plan in the customer's currency."
        )
    if billing_interval_months is None:
        interval, whose = plan.billing_interval_months, "the plan's billing interval"
    else:
        interval, whose = billing_interval_months, "the billing interval"
        if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
            raise ValidationError(
                f"The billing interval must be a whole number of months above zero, not "
                f"{billing_interval_months!r}."
            )
    if term_months <= 0 or term_months % interval:
        raise ValidationError(
            f"The term ({term_months} months) must be a positive multiple of {whose} "
            f"({interval} months)."
        )
    return currency


def _validate_items(items: Sequence[ItemSpec], *, plan: Plan, currency: str) -> None:
    for spec in items:
        if spec.quantity < 0:
            raise ValidationError(f"The quantity of '{spec.label}' cannot be negative.")
        if spec.charge is None:
            if not spec.one_time:
                raise ValidationError(
                    f"'{spec.label}' has no charge: only a one-time fee may be priced without "
                    "one of the plan's charges."
                )
            if not spec.name or spec.pricing is None:
                raise ValidationError(
                    "A one-time fee without a charge needs a name and its price terms (pricing)."
                )
            continue
        if spec.charge.plan_id != plan.pk:
            raise ValidationError(f"Charge '{spec.charge}' does not belong to plan '{plan.code}'.")
        if spec.charge.currency != currency:
            raise ValidationError(
                f"Charge '{spec.charge.name}' is priced in {spec.charge.currency}, not {currency}."
            )
        if spec.one_time and spec.charge.is_usage:
            raise ValidationError(
                f"'{spec.label}' is usage of {spec.charge.metric.code}: only a fixed fee can be "
                "billed once."
            )


def _validate_own_interval(items: Sequence[ItemSpec], *, plan: Plan, interval: int) -> None:
    """Price terms are per billing period. The catalog's are per the plan's interval, so a
    contract billed at another interval must give every item its terms for that period: a
    monthly price silently billed once a quarter would bill a third of the contract."""
    for spec in items:
        if spec.pricing is None:
            raise ValidationError(
                f"'{spec.label}' is billed every {interval} months but the plan's prices are per "
                f"{plan.billing_interval_months} months: give its price terms for "
                f"{interval} months (pricing)."
            )


def _item_row(spec: ItemSpec, position: int, periods: list[Period]) -> SubscriptionItem:
    """One item, unsaved: its net terms, list terms and ramp snapshotted and checked."""
    pricing = _snapshot_pricing(spec)
    if spec.one_time and rating.pricing_model(pricing).on_amounts:
        raise ValidationError(
            f"'{spec.label}' is a one-time fee: price it by a flat fee or a unit price, not by "
            "a percentage of event amounts."
        )
    for field, value in (("discount", spec.discount_percent), ("discount", spec.discount_amount)):
        if value is not None and value < 0:
            raise ValidationError(f"The {field} of '{spec.label}' cannot be negative.")
    if spec.discount_percent is not None and spec.discount_percent > 100:
        raise ValidationError(f"The discount of '{spec.label}' cannot be above 100%.")
    charge = spec.charge
    if spec.list_pricing is not None:
        list_pricing = _plain_data(spec.list_pricing)
    else:
        list_pricing = charge.pricing() if charge is not None else None
    timing = SubscriptionItem.Timing.ONE_TIME if spec.one_time else charge.billing_timing
    return SubscriptionItem(
        charge=charge,
        name=spec.label,
        metric=charge.metric if charge else None,
        group_value=charge.group_value if charge else "",
        prorated=bool(charge and charge.prorated and not spec.one_time),
        billing_timing=timing,
        quantity=spec.quantity,
        unit_name=charge.unit_name if charge else "unit",
        pricing=pricing,
        list_pricing=list_pricing,
        discount_percent=spec.discount_percent,
        discount_amount=spec.discount_amount,
        phases=_snapshot_phases(spec, periods),
        position=position,
    )


def _credits_grant(subscription: Subscription, credits: Sequence[CreditSpec]) -> None:
    """The contract's prepaid credits, granted on its start date (after its items exist: a unit
    credit must be on a metric the subscription is billed for)."""
    for credit in credits:
        prepaid_credit_validate(
            subscription=subscription, amount=credit.amount, metric=credit.metric
        )
        PrepaidCredit.objects.create(
            subscription=subscription,
            metric=credit.metric,
            granted=credit.amount,
            remaining=credit.amount,
            granted_on=subscription.start_date,
            note=credit.note,
        )


def _trial_end(plan: Plan, start_date: dt.date, periods: list[Period]) -> dt.date | None:
    trial_end = start_date + dt.timedelta(days=plan.trial_days) if plan.trial_days else None
    if trial_end and trial_end >= periods[-1].end:
        raise ValidationError(
            f"The plan's {plan.trial_days}-day trial covers the whole term: lengthen the term."
        )
    return trial_end


def _subscription_insert(*, external_id: str, **fields) -> Subscription:
    """The unique external id is the last word against a concurrent creation."""
    try:
        with transaction.atomic():
            return Subscription.objects.create(external_id=external_id, **fields)
    except IntegrityError as exc:
        raise ValidationError(
            f"A subscription with external id '{external_id}' already exists."
        ) from exc


def _schedule_create(
    subscription: Subscription,
    items: list[SubscriptionItem],
    periods: list[Period],
    trial_end: dt.date | None,
) -> None:
    """The billing periods, each billed from its start or the trial's end (a period wholly
    inside the trial is skipped), with the fixed fees due in advance: the terms in force in the
    period (a ramp's phase) and, in the first billed period, the one-time fees."""
    schedule = []
    for seq, period in enumerate(periods):
        billed_from = max(period.start, trial_end) if trial_end else period.start
        if billed_from >= period.end:
            continue  # wholly inside the trial: nothing to bill
        schedule.append(
            BillingPeriod(
                subscription=subscription,
                sequence=seq,
                start_date=period.start,
                end_date=period.end,
                billed_from=billed_from,
                advance_amount=sum(
                    (f.amount for f in fixed_fees(subscription, items, period, billed_from)),
                    Decimal(0),
                ),
            )
        )
    BillingPeriod.objects.bulk_create(schedule)


@dataclass(frozen=True)
class Fee:
    item: SubscriptionItem
    rating: rating.Rating
    fraction: Decimal  # share of the period billed (1 unless prorated)
    amount: Decimal  # rounded once
    pricing: dict  # the terms rated: the item's, or its ramp phase's
    quantity: Decimal  # the quantity rated
    window: Period  # the days billed


def is_first_billed(subscription: Subscription, billed_from: dt.date) -> bool:
    """Whether a period billed from `billed_from` is the subscription's first billed one (its
    start, or the trial's end): where one-time fees are billed."""
    return billed_from == (subscription.trial_end_date or subscription.start_date)


def _billed_once_here(subscription, item, billed_from: dt.date) -> bool:
    """A one-time fee of the contract is billed in advance of the first billed period; one
    added by a change, in advance of the period starting on its date (inside a period, with
    the change's proration)."""
    if item.starts_on is None:
        return is_first_billed(subscription, billed_from)
    return item.starts_on == billed_from


def fixed_fees(
    subscription: Subscription,
    items,
    period: Period,
    billed_from: dt.date,
    timing: str = Charge.Timing.IN_ADVANCE,
    billed_to: dt.date | None = None,
) -> list[Fee]:
    """The fixed (non-metered) fees of one period with the given timing, each rounded once.

    `period` is the period as priced (a cancellation may bill it only up to `billed_to`).
    In advance, the versions in force on `billed_from` are billed for the period; a prorated
    item billed from inside it (after a trial) costs its share of the days. In arrears, each
    version is billed for the days it was in force, prorated when a change or a cancellation
    cut them. Each version is rated with its terms in force at the start of what it bills (a
    ramp changes only on a period boundary). One-time fees are whole, in advance, once.
    """
    fees = []
    billed_to = billed_to or period.end
    for item in items:
        if item.is_usage:
            continue
        if item.is_one_time:
            if timing != Charge.Timing.IN_ADVANCE or not _billed_once_here(
                subscription, item, billed_from
            ):
                continue
            window = Period(billed_from, period.end)
        elif item.billing_timing != timing:
            continue
        elif timing == Charge.Timing.IN_ADVANCE:
            if not item.in_force(billed_from):
                continue
            window = Period(billed_from, period.end)
        else:
            overlap = item.window_in(billed_from, billed_to)
            if overlap is None:
                continue
            window = Period(*overlap)
        pricing, quantity = item.terms_on(window.start)
        rated = rating.rate(pricing, quantity)
        fraction, amount = Decimal(1), rated.amount
        after_trial = window == Period(billed_from, period.end) and billed_from > period.start
        cut = window != Period(period.start, period.end)
        if not item.is_one_time and cut and (item.prorated or not after_trial):
            fraction = proration_fraction(period, window)
            # amount × days_used / days: multiply first, so only the final rounding happens
            amount = rated.amount * window.days / period.days
        amount = round_money(amount, subscription.currency)
        fees.append(
            Fee(
                item=item,
                rating=rated,
                fraction=fraction,
                amount=amount,
                pricing=pricing,
                quantity=quantity,
                window=window,
            )
        )
    return fees


@transaction.atomic
def subscription_end(*, subscription: Subscription) -> Subscription:
    """Mark a subscription whose term is over (and fully billed) as ended."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status == Subscription.Status.ACTIVE:
        subscription.status = Subscription.Status.ENDED
        subscription.save(update_fields=["status"])
    return subscription


@transaction.atomic
def prepaid_credit_grant(
    *,
    subscription: Subscription,
    amount: Decimal,
    metric: BillableMetric | None = None,
    note: str = "",
) -> PrepaidCredit:
    """Add a prepaid balance (money in the subscription's currency, or units of a metric)."""
    prepaid_credit_validate(subscription=subscription, amount=amount, metric=metric)
    return PrepaidCredit.objects.create(
        subscription=subscription,
        metric=metric,
        granted=amount,
        remaining=amount,
        granted_on=clock.today(),
        note=note,
    )


def prepaid_credit_validate(
    *, subscription: Subscription, amount: Decimal, metric: BillableMetric | None
) -> None:
    if amount <= 0:
        raise ValidationError("A prepaid credit must be above zero.")
    if metric is None and round_money(amount, subscription.currency) != amount:
        raise ValidationError(f"{amount} has more decimals than {subscription.currency} allows.")
    if metric is not None and not subscription.items.filter(metric=metric).exists():
        raise ValidationError(
            f"Subscription {subscription.external_id} is not billed for {metric.code}: a unit "
            "credit must be on a metric it uses."
        )


@transaction.atomic
def prepaid_credit_draw(*, credit: PrepaidCredit, amount: Decimal) -> PrepaidCredit:
    """Take `amount` (units, or money in the subscription's currency) off a prepaid credit.

    The row is locked and re-read, so two draws at once cannot both spend the same balance; the
    balance never goes below zero (and the database's check constraint is the last word). The
    caller records what the draw paid for (invoicing's CreditUse). Returns the updated credit.
    """
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValidationError(f"A draw on a prepaid credit must be above zero, not {amount}.")
    locked = PrepaidCredit.objects.select_for_update().get(pk=credit.pk)
    if amount > locked.remaining:
        raise ValidationError(
            f"Prepaid credit {locked} has {locked.remaining} left: it cannot pay {amount}. "
            "Bill again: the next run reads the balance as it is now."
        )
    locked.remaining -= amount
    locked.save(update_fields=["remaining"])
    return locked


def prepaid_credit_give_back(*, credit: PrepaidCredit, amount: Decimal) -> PrepaidCredit:
    """Put back `amount` a voided invoice drew from a prepaid credit (the reverse of
    prepaid_credit_draw), under the credit's row lock; never above what was granted."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValidationError(f"A give-back to a prepaid credit must be above zero, not {amount}.")
    locked = PrepaidCredit.objects.select_for_update().get(pk=credit.pk)
    if locked.remaining + amount > locked.granted:
        raise ValidationError(
            f"Prepaid credit {locked} cannot take back {amount}: more than was granted."
        )
    locked.remaining += amount
    locked.save(update_fields=["remaining"])
    return locked


def prepaid_credit_close(*, credit: PrepaidCredit, reason: str) -> PrepaidCredit:
    """Close a prepaid credit (a cancellation): what is left on it is no longer drawn. Under the
    credit's row lock its remaining goes to 0 and the note says how much was closed and why (the
    history keeps the row as it was). A credit with nothing left is returned as it is."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the prepaid credit is closed (the reason is kept).")
    with transaction.atomic():
        locked = PrepaidCredit.objects.select_for_update().get(pk=credit.pk)
        if locked.remaining <= 0:
            return locked
        left = locked.remaining
        if locked.metric_id is None:
            closed = format_money(left, locked.subscription.currency)
        else:
            closed = format_quantity(left, locked.metric.code)
        note = f"{closed} closed: {reason}"
        locked.note = (f"{locked.note}; {note}" if locked.note else note)[:200]
        locked.remaining = Decimal(0)
        locked.save(update_fields=["remaining", "note"])
    return locked
