"""Changes of a contract in force: amendments, quantity changes, renewals and cancellations.

A change never edits what was in force: each item is a *version* in force over [starts_on,
ends_on). A change from day D ends the versions it replaces on D (`ended_by`) and adds new
versions from D (`change`), so every invoice and the billing schedule read the version in force
for each day (`SubscriptionItem.in_force`, `window_in`). The term's end does not move (changes are
co-termed); a renewal extends the term; a cancellation ends it early.

Every change locks the subscription row, checks the revision it was drafted on (a concurrent
change is refused, nothing is half-applied), raises the revision and is recorded as a
SubscriptionChange (what, from when, by whom, why). What a change costs (proration, credit notes)
is invoicing's business: it reads the versions and the changes.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.db import transaction

from catalog.models import Plan
from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_day, format_quantity
from core.periods import Period, billing_periods
from subscriptions.models import (
    BillingPeriod,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)
from subscriptions.services import (
    ItemSpec,
    PhaseSpec,
    _item_row,
    _validate_items,
    fixed_fees,
)


@dataclass(frozen=True)
class ItemChange:
    """One line of a change: the version `item` (in force on the change's date) is replaced by
    `spec`; `spec` None removes the item; `item` None adds a new one."""

    item: SubscriptionItem | None
    spec: ItemSpec | None


def item_spec_of(item: SubscriptionItem, *, on: dt.date | None = None, **overrides) -> ItemSpec:
    """The contract terms of a version as an ItemSpec (the terms a change starts from).

    With `on`, a ramp is kept only for its phases from that day (the first one cut to start on
    it); `overrides` replace any field (quantity, pricing, phases…)."""
    phases = []
    for phase in item.phases or []:
        start, end = dt.date.fromisoformat(phase["start"]), dt.date.fromisoformat(phase["end"])
        if on is not None and end <= on:
            continue
        phases.append(
            PhaseSpec(
                start=max(start, on) if on else start,
                end=end,
                quantity=Decimal(str(phase["quantity"])),
                pricing=phase["pricing"],
            )
        )
    spec = ItemSpec(
        charge=item.charge,
        quantity=item.quantity,
        name=item.name,
        pricing=item.pricing,
        list_pricing=item.list_pricing,
        discount_percent=item.discount_percent,
        discount_amount=item.discount_amount,
        phases=phases,
        one_time=item.is_one_time,
    )
    return replace(spec, **overrides)


def items_in_force(subscription: Subscription, day: dt.date) -> list[SubscriptionItem]:
    """The versions in force on `day`, in the contract's order."""
    items = subscription.items.select_related("charge", "metric").order_by("position", "id")
    return [item for item in items if item.in_force(day) and not item.is_one_time]


def _lock(subscription: Subscription, expected_revision: int | None) -> Subscription:
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if expected_revision is not None and locked.revision != expected_revision:
        last = locked.changes.order_by("-at", "-id").first()
        since = f" ({last.get_kind_display().lower()}: {last.description})" if last else ""
        raise Conflict(
            f"Subscription {locked.external_id} changed since this was drafted{since}: "
            "start again from the contract in force."
        )
    if locked.status != Subscription.Status.ACTIVE or locked.canceled_on:
        raise Conflict(
            f"Subscription {locked.external_id} is {locked.get_status_display().lower()}: "
            "only a live subscription can change."
        )
    return locked


def period_in_progress(subscription: Subscription, day: dt.date) -> BillingPeriod | None:
    return BillingPeriod.objects.filter(
        subscription=subscription, start_date__lte=day, end_date__gt=day
    ).first()


def check_change_date(subscription: Subscription, effective_date: dt.date, today: dt.date) -> None:
    """A change takes effect inside the term, and not before the period in progress (earlier
    periods may be invoiced: a correction of those is a credit note)."""
    if not isinstance(effective_date, dt.date):
        raise ValidationError("Give the date the change takes effect (YYYY-MM-DD).")
    end = subscription.end_date
    if not subscription.start_date <= effective_date < end:
        raise ValidationError(
            f"The change must take effect within the term, {subscription.start_date} to "
            f"{end - dt.timedelta(days=1)} (the term's end does not move), not on "
            f"{effective_date}."
        )
    current = period_in_progress(subscription, today)
    earliest = current.start_date if current else subscription.start_date
    if today >= subscription.start_date and effective_date < earliest:
        raise ValidationError(
            f"The change cannot take effect before {earliest}, the start of the billing "
            "period in progress: earlier periods are invoiced (correct them with a credit note)."
        )
    later = subscription.changes.filter(
        effective_date__gt=effective_date,
        kind__in=[SubscriptionChange.Kind.AMENDMENT, SubscriptionChange.Kind.QUANTITY],
    ).first()
    if later:
        raise ValidationError(
            f"Subscription {subscription.external_id} already changes on "
            f"{later.effective_date} ({later.description}): a new change must take effect "
            "on or after that date."
        )


def _describe(removed, added) -> str:
    """What changed, in words: "Seats: 12 → 20 seats", "+ Analytics add-on", "− Support"."""
    parts, unmatched = [], list(added)
    for item in removed:
        spec = next(
            (s for s in unmatched if s.charge is not None and s.charge.pk == item.charge_id), None
        )
        if spec is None:
            parts.append(f"− {item.name}")
            continue
        unmatched = [s for s in unmatched if s is not spec]
        if spec.quantity != item.quantity:
            parts.append(
                f"{item.name}: {format_quantity(item.quantity)} → {format_quantity(spec.quantity)}"
                f" {item.unit_name}s"
            )
        else:
            parts.append(f"{item.name}: new terms")
    parts += [f"+ {spec.label}" for spec in unmatched]
    return "; ".join(parts) or "no change"


def _periods_from(subscription: Subscription, day: dt.date) -> list[Period]:
    """The schedule's periods from `day` on, the first cut to start on it: where a new
    version's ramp may change."""
    periods = [
        Period(max(p.start_date, day), p.end_date)
        for p in BillingPeriod.objects.filter(subscription=subscription, end_date__gt=day)
    ]
    if not periods:
        raise ValidationError(f"Subscription {subscription.external_id} is not billed after {day}.")
    return periods


def schedule_refresh(subscription: Subscription, *, since: dt.date) -> None:
    """Recompute what each period from `since` bills in advance (the versions in force at its
    billed start): the schedule shows the contract as changed."""
    items = list(subscription.items.all())
    for period in BillingPeriod.objects.filter(subscription=subscription, billed_from__gte=since):
        fees = fixed_fees(
            subscription,
            items,
            Period(period.start_date, period.priced_end),
            period.billed_from,
        )
        period.advance_amount = sum((fee.amount for fee in fees), Decimal(0))
        period.save(update_fields=["advance_amount"])


def _record(subscription, *, kind, effective_date, description, by, source, reason, invoice_now):
    subscription.revision += 1
    return SubscriptionChange.objects.create(
        subscription=subscription,
        kind=kind,
        effective_date=effective_date,
        description=description,
        invoice_now=invoice_now,
        source=source,
        reason=(reason or "").strip(),
        by=by if by is not None and getattr(by, "is_authenticated", False) else None,
        at=clock.now(),
    )


@transaction.atomic
def subscription_change(
    *,
    subscription: Subscription,
    effective_date: dt.date,
    changes: Sequence[ItemChange],
    plan: Plan | None = None,
    kind: str = SubscriptionChange.Kind.AMENDMENT,
    description: str = "",
    reason: str = "",
    source: str = "",
    by=None,
    invoice_now: bool = False,
    expected_revision: int | None = None,
    today: dt.date | None = None,
) -> SubscriptionChange:
    """Change a live subscription from `effective_date`, co-termed: each ItemChange ends the
    version it replaces on that date and adds the new version from it. A new `plan` (upgrade,
    downgrade) ends every version of the old plan's items not replaced.

    Refused, with nothing changed: a subscription that is not live, a revision other than
    `expected_revision` (a concurrent change won), a date outside the term or before the period
    in progress, an item not in force on that date, terms the rating engine refuses."""
    today = today or clock.today()
    subscription = _lock(subscription, expected_revision)
    check_change_date(subscription, effective_date, today)
    day = effective_date
    target_plan = plan or subscription.plan
    currency = str(subscription.currency)
    if target_plan.pk != subscription.plan_id and currency not in target_plan.currencies:
        raise ValidationError(
            f"Plan '{target_plan.code}' is not sold in {currency}: choose a plan in the "
            "subscription's currency."
        )
    specs = [change.spec for change in changes if change.spec is not None]
    _validate_items(specs, plan=target_plan, currency=currency)
    in_force = {item.pk: item for item in items_in_force(subscription, day)}
    ending = []
    for change in changes:
        item = change.item
        if item is None:
            continue
        if item.pk not in in_force or item.subscription_id != subscription.pk:
            raise ValidationError(
                f"'{item.name}' is not in force on {day} in subscription "
                f"{subscription.external_id}: change the version in force."
            )
        if item.starts_on == day:
            raise ValidationError(
                f"'{item.name}' already changes on {day}: change it from a later date, or "
                "amend from the contract in force."
            )
        ending.append(item)
    if target_plan.pk != subscription.plan_id:
        ending += [
            item
            for pk, item in in_force.items()
            if item not in ending and item.charge and item.charge.plan_id != target_plan.pk
        ]
    if not ending and not specs:
        raise ValidationError("The change changes nothing: give at least one item's new terms.")
    periods = _periods_from(subscription, day)
    next_position = max(subscription.items.values_list("position", flat=True), default=-1) + 1
    rows = []
    for spec in specs:
        replaced = next((c.item for c in changes if c.spec is spec and c.item), None)
        position = replaced.position if replaced else next_position
        if not replaced:
            next_position += 1
        rows.append(_item_row(spec, position, periods))
    record = _record(
        subscription,
        kind=kind,
        effective_date=day,
        description=description or _describe(ending, specs),
        by=by,
        source=source,
        reason=reason,
        invoice_now=invoice_now,
    )
    for item in ending:
        item.ends_on, item.ended_by = day, record
        item.save(update_fields=["ends_on", "ended_by"])
    for row in rows:
        row.subscription, row.starts_on, row.change = subscription, day, record
        row.save()
    if target_plan.pk != subscription.plan_id:
        subscription.plan = target_plan
    subscription.save(update_fields=["revision", "plan"])
    schedule_refresh(subscription, since=day)
    return record


def subscription_set_quantity(
    *,
    subscription: Subscription,
    item: SubscriptionItem,
    quantity: Decimal,
    effective_date: dt.date,
    by=None,
    source: str = "",
    reason: str = "",
    invoice_now: bool = False,
    expected_revision: int | None = None,
    today: dt.date | None = None,
) -> SubscriptionChange:
    """Set a fixed fee's quantity (seats) from a date, at the item's own price terms: the same
    versioning and proration as an amendment, without a quote."""
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity < 0:
        raise ValidationError(f"The quantity must be a number of at least 0, not {quantity}.")
    if item.is_usage:
        raise ValidationError(
            f"'{item.name}' is usage: it is billed as measured, it has no quantity to set."
        )
    if item.is_one_time:
        raise ValidationError(f"'{item.name}' is a one-time fee: it has no quantity over time.")
    if item.phases:
        raise ValidationError(
            f"'{item.name}' is ramped (its quantity changes by phase): change it with an "
            "amendment quote."
        )
    if quantity == item.quantity:
        raise ValidationError(
            f"'{item.name}' already has {format_quantity(quantity)} {item.unit_name}s."
        )
    return subscription_change(
        subscription=subscription,
        effective_date=effective_date,
        changes=[ItemChange(item, item_spec_of(item, quantity=quantity))],
        kind=SubscriptionChange.Kind.QUANTITY,
        reason=reason,
        source=source,
        by=by,
        invoice_now=invoice_now,
        expected_revision=expected_revision,
        today=today,
    )


@transaction.atomic
def subscription_renew(
    *,
    subscription: Subscription,
    term_months: int,
    items: Sequence[ItemSpec],
    by=None,
    source: str = "",
    reason: str = "",
    renewal: str | None = None,
    expected_revision: int | None = None,
    today: dt.date | None = None,
) -> SubscriptionChange:
    """Extend the subscription by a new term starting the day the current one ends, at the
    terms of `items` (phases dated in the new term): the versions in force at the end stop
    there, the new ones start there, and the schedule gets the new term's periods, with no gap
    and no overlap."""
    today = today or clock.today()
    subscription = _lock(subscription, expected_revision)
    start = subscription.term_end_date
    if today >= start:
        raise Conflict(
            f"The term of {subscription.external_id} ended on {start}: its last period is "
            "invoiced, so a renewal now would leave a gap. Quote a new subscription instead."
        )
    interval = subscription.billing_interval_months
    if not isinstance(term_months, int) or term_months <= 0 or term_months % interval:
        raise ValidationError(
            f"The renewal term ({term_months} months) must be a positive multiple of the "
            f"billing interval ({interval} months)."
        )
    _validate_items(items, plan=subscription.plan, currency=str(subscription.currency))
    periods = billing_periods(start, term_months, interval)
    rows = [_item_row(spec, position, periods) for position, spec in enumerate(items)]
    last = BillingPeriod.objects.filter(subscription=subscription).order_by("-sequence").first()
    record = _record(
        subscription,
        kind=SubscriptionChange.Kind.RENEWAL,
        effective_date=start,
        description=f"Renewed for {term_months} months, {start} to "
        f"{periods[-1].end - dt.timedelta(days=1)}",
        by=by,
        source=source,
        reason=reason,
        invoice_now=False,
    )
    for item in subscription.items.all():
        if (item.ends_on is None or item.ends_on > start) and not item.is_one_time:
            item.ends_on, item.ended_by = start, record
            item.save(update_fields=["ends_on", "ended_by"])
    for row in rows:
        row.subscription, row.starts_on, row.change = subscription, start, record
        row.save()
    sequence = last.sequence + 1 if last else 0
    BillingPeriod.objects.bulk_create(
        BillingPeriod(
            subscription=subscription,
            sequence=sequence + number,
            start_date=period.start,
            end_date=period.end,
            billed_from=period.start,
            advance_amount=0,
        )
        for number, period in enumerate(periods)
    )
    subscription.term_months += term_months
    if renewal:
        subscription.renewal = renewal
    subscription.save(update_fields=["revision", "term_months", "renewal"])
    schedule_refresh(subscription, since=start)
    return record


@transaction.atomic
def subscription_cancel(
    *,
    subscription: Subscription,
    reason: str,
    effective_date: dt.date | None = None,
    by=None,
    source: str = "",
    today: dt.date | None = None,
) -> SubscriptionChange:
    """Cancel from `effective_date` (None: at the end of the period in progress).

    The service ends that day: the versions in force end on it, the period it falls in is cut
    short there (its fees stay priced on the whole period, `priced_end_date`), later periods
    are removed. Invoicing then bills the usage up to that day on a final invoice, credits the
    unused prepaid time with a credit note, and settles the prepaid credits by the contract's
    rule. Cancelled during the trial, nothing is ever billed."""
    today = today or clock.today()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the subscription is cancelled (the reason is kept).")
    subscription = _lock(subscription, None)
    if effective_date is None:
        current = period_in_progress(subscription, today)
        effective_date = current.end_date if current else subscription.start_date
    if effective_date != subscription.end_date:
        check_change_date(subscription, effective_date, today)
    day = effective_date
    record = _record(
        subscription,
        kind=SubscriptionChange.Kind.CANCELLATION,
        effective_date=day,
        description=f"Cancelled from {format_day(day)}",
        by=by,
        source=source,
        reason=reason,
        invoice_now=False,
    )
    for item in subscription.items.all():
        if item.starts_on is not None and item.starts_on >= day:
            item.delete()  # a version that never came into force
        elif item.ends_on is None or item.ends_on > day:
            item.ends_on, item.ended_by = day, record
            item.save(update_fields=["ends_on", "ended_by"])
    periods = BillingPeriod.objects.filter(subscription=subscription)
    periods.filter(billed_from__gte=day).delete()
    for period in periods.filter(start_date__lt=day, end_date__gt=day):
        period.priced_end_date = period.priced_end
        period.end_date = day
        period.save(update_fields=["priced_end_date", "end_date"])
    subscription.status = Subscription.Status.CANCELED
    subscription.canceled_on = day
    subscription.canceled_at = record.at
    subscription.canceled_by = record.by
    subscription.cancel_reason = reason
    subscription.save(
        update_fields=[
            "revision",
            "status",
            "canceled_on",
            "canceled_at",
            "canceled_by",
            "cancel_reason",
        ]
    )
    return record
