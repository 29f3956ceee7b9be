import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from catalog import rating
from catalog.models import Charge, Plan
from core.errors import ValidationError
from core.money import round_money
from core.periods import billing_periods
from customers.models import Customer
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem


@dataclass(frozen=True)
class ItemSpec:
    """What the contract says about one charge: quantity and (optionally) a negotiated price."""

    charge: Charge
    quantity: Decimal
    unit_price: Decimal | None = None
    name: str = ""


def _snapshot_pricing(spec: ItemSpec) -> dict:
    pricing = spec.charge.pricing()
    if spec.unit_price is not None:
        if spec.unit_price < 0:
            raise ValidationError(f"The price of '{spec.charge.name}' cannot be negative.")
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

    `items` defaults to every charge of the plan at its catalog price and default quantity.
    """
    external_id = external_id.strip()
    if not external_id:
        raise ValidationError("A subscription needs an external id (the id usage events carry).")
    if Subscription.objects.filter(external_id=external_id).exists():
        raise ValidationError(f"A subscription with external id '{external_id}' already exists.")
    if plan.currency != customer.currency:
        raise ValidationError(
            f"Plan '{plan.code}' is priced in {plan.currency} but {customer} is billed in "
            f"{customer.currency}: choose a plan in the customer's currency."
        )
    interval = plan.billing_interval_months
    if term_months <= 0 or term_months % interval:
        raise ValidationError(
            f"The term ({term_months} months) must be a positive multiple of the plan's billing "
            f"interval ({interval} months)."
        )
    if items is None:
        items = [ItemSpec(charge=c, quantity=c.default_quantity) for c in plan.charges.all()]
    for spec in items:
        if spec.charge.plan_id != plan.pk:
            raise ValidationError(f"Charge '{spec.charge}' does not belong to plan '{plan.code}'.")
        if spec.quantity < 0:
            raise ValidationError(f"The quantity of '{spec.charge.name}' cannot be negative.")

    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                external_id=external_id,
                customer=customer,
                plan=plan,
                currency=plan.currency,
                start_date=start_date,
                term_months=term_months,
                billing_interval_months=interval,
            )
    except IntegrityError as exc:
        raise ValidationError(
            f"A subscription with external id '{external_id}' already exists."
        ) from exc

    created = SubscriptionItem.objects.bulk_create(
        SubscriptionItem(
            subscription=subscription,
            charge=spec.charge,
            name=spec.name or spec.charge.name,
            metric=spec.charge.metric,
            billing_timing=spec.charge.billing_timing,
            quantity=spec.quantity,
            unit_name=spec.charge.unit_name,
            pricing=_snapshot_pricing(spec),
            position=position,
        )
        for position, spec in enumerate(items)
    )
    advance = advance_amount(subscription, created)
    BillingPeriod.objects.bulk_create(
        BillingPeriod(
            subscription=subscription,
            sequence=seq,
            start_date=period.start,
            end_date=period.end,
            advance_amount=advance,
        )
        for seq, period in enumerate(billing_periods(start_date, term_months, interval))
    )
    return subscription


def advance_amount(subscription: Subscription, items) -> Decimal:
    """What is billed at the start of each period: the fixed fees in advance, each line rounded."""
    return sum(
        (
            round_money(rating.rate(i.pricing, i.quantity).amount, subscription.currency)
            for i in items
            if i.billing_timing == Charge.Timing.IN_ADVANCE and not i.is_usage
        ),
        Decimal(0),
    )


@transaction.atomic
def subscription_end(*, subscription: Subscription) -> Subscription:
    """Mark a subscription whose term is over (and fully billed) as ended."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status == Subscription.Status.ACTIVE:
        subscription.status = Subscription.Status.ENDED
        subscription.save(update_fields=["status"])
    return subscription
