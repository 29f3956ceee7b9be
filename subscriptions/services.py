import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from catalog import rating
from catalog.models import BillableMetric, Charge, Plan
from catalog.selectors import charges_in_force
from core import clock
from core.errors import ValidationError
from core.money import round_money
from core.periods import Period, billing_periods, proration_fraction
from customers.models import Customer
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionItem


@dataclass(frozen=True)
class PhaseSpec:
    """A ramp phase of an item, [start, end): its quantity and net terms."""

    start: dt.date
    end: dt.date
    quantity: Decimal
    pricing: dict


@dataclass(frozen=True)
class CreditSpec:
    """A prepaid credit granted when the subscription is created."""

    amount: Decimal
    metric: BillableMetric | None = None
    note: str = ""


@dataclass(frozen=True)
class ItemSpec:
    """What the contract says about one charge: quantity and (optionally) a negotiated price."""

    charge: Charge | None
    quantity: Decimal
    unit_price: Decimal | None = None
    name: str = ""
    pricing: dict | None = None
    list_pricing: dict | None = None
    discount_percent: Decimal | None = None
    discount_amount: Decimal | None = None
    phases: tuple = ()
    one_time: bool = False


def _snapshot_pricing(spec: ItemSpec) -> dict:
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


@transaction.atomic
def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    start_date: dt.date,
    term_months: int,
    items: list[ItemSpec] | None = None,
) -> Subscription:
    """Create a subscription, snapshot its prices and quantities, and lay out its billing schedule.

    The subscription is billed in the customer's currency, which the plan must be sold in.
    `items` defaults to the plan's charges in that currency in force on the start date, at
    catalog prices and default quantities. A plan's trial makes its first days free: the
    schedule stays anchored on the start date and billing begins when the trial ends.
    """
    external_id = external_id.strip()
    currency = _validate_terms(
        customer=customer, plan=plan, external_id=external_id, term_months=term_months
    )
    if items is None:
        items = [
            ItemSpec(charge=c, quantity=c.default_quantity)
            for c in charges_in_force(plan=plan, currency=currency, on=start_date)
        ]
    _validate_items(items, plan=plan, currency=currency)
    periods = billing_periods(start_date, term_months, plan.billing_interval_months)
    trial_end = _trial_end(plan, start_date, periods)
    subscription = _subscription_insert(
        external_id=external_id,
        customer=customer,
        plan=plan,
        currency=currency,
        start_date=start_date,
        trial_end_date=trial_end,
        term_months=term_months,
        billing_interval_months=plan.billing_interval_months,
    )
    created = _items_create(subscription, items)
    _schedule_create(subscription, created, periods, trial_end)
    return subscription


def _validate_terms(*, customer: Customer, plan: Plan, external_id: str, term_months: int) -> str:
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
    interval = plan.billing_interval_months
    if term_months <= 0 or term_months % interval:
        raise ValidationError(
            f"The term ({term_months} months) must be a positive multiple of the plan's billing "
            f"interval ({interval} months)."
        )
    return currency


def _validate_items(items: list[ItemSpec], *, plan: Plan, currency: str) -> None:
    for spec in items:
        if spec.charge.plan_id != plan.pk:
            raise ValidationError(f"Charge '{spec.charge}' does not belong to plan '{plan.code}'.")
        if spec.charge.currency != currency:
            raise ValidationError(
                f"Charge '{spec.charge.name}' is priced in {spec.charge.currency}, not {currency}."
            )
        if spec.quantity < 0:
            raise ValidationError(f"The quantity of '{spec.charge.name}' cannot be negative.")


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


def _items_create(subscription: Subscription, items: list[ItemSpec]) -> list[SubscriptionItem]:
    """One item per spec, its price terms snapshotted from the charge."""
    return SubscriptionItem.objects.bulk_create(
        SubscriptionItem(
            subscription=subscription,
            charge=spec.charge,
            name=spec.name or spec.charge.name,
            metric=spec.charge.metric,
            group_value=spec.charge.group_value,
            prorated=spec.charge.prorated,
            billing_timing=spec.charge.billing_timing,
            quantity=spec.quantity,
            unit_name=spec.charge.unit_name,
            pricing=_snapshot_pricing(spec),
            position=position,
        )
        for position, spec in enumerate(items)
    )


def _schedule_create(
    subscription: Subscription,
    items: list[SubscriptionItem],
    periods: list[Period],
    trial_end: dt.date | None,
) -> None:
    """The billing periods, each billed from its start or the trial's end (a period wholly
    inside the trial is skipped), with the fixed fees due in advance."""
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
    fraction: Decimal  # share of the period billed (1 unless prorated after a trial)
    amount: Decimal  # rounded once


def fixed_fees(
    subscription: Subscription,
    items,
    period: Period,
    billed_from: dt.date,
    timing: str = Charge.Timing.IN_ADVANCE,
) -> list[Fee]:
    """The fixed (non-metered) fees of one period with the given timing, each rounded once.

    A prorated item billed from inside the period (after a trial) costs its share of the days.
    """
    fees = []
    for item in items:
        if item.is_usage or item.billing_timing != timing:
            continue
        rated = rating.rate(item.pricing, item.quantity)
        fraction, amount = Decimal(1), rated.amount
        if item.prorated and billed_from > period.start:
            used = Period(billed_from, period.end)
            fraction = proration_fraction(period, used)
            # amount × days_used / days: multiply first, so only the final rounding happens
            amount = rated.amount * used.days / period.days
        amount = round_money(amount, subscription.currency)
        fees.append(Fee(item=item, rating=rated, fraction=fraction, amount=amount))
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
