import datetime as dt
from decimal import Decimal

from django.db.models import Q

from catalog.models import Charge, Plan, StandaloneSellingPrice


def charges_in_force(*, plan: Plan, currency: str, on: dt.date) -> list[Charge]:
    """The plan's charges in a currency on a date: per key, the latest version effective by then."""
    candidates = (
        plan.charges.filter(currency=currency)
        .filter(Q(effective_from__isnull=True) | Q(effective_from__lte=on))
        .select_related("metric")
        .prefetch_related("tiers")
    )
    latest: dict[str, Charge] = {}
    for charge in candidates:
        current = latest.get(charge.key)
        if current is None or (charge.effective_from or dt.date.min) > (
            current.effective_from or dt.date.min
        ):
            latest[charge.key] = charge
    return sorted(latest.values(), key=lambda c: (c.position, c.pk))


def ssp_line(charge: Charge, *, on: dt.date) -> StandaloneSellingPrice | None:
    """The SSP price book line of the charge (its plan, key and currency) in force on `on`."""
    return (
        StandaloneSellingPrice.objects.filter(
            plan_id=charge.plan_id,
            charge_key=charge.key,
            currency=charge.currency,
            effective_from__lte=on,
        )
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=on))
        .order_by("-effective_from")
        .first()
    )


def ssp_value(line: StandaloneSellingPrice | None, list_price: Decimal) -> Decimal:
    """The SSP a book line gives for a list price: its amount, or list × percent / 100; no line:
    the list price itself. Not rounded: an SSP is a weight of the allocation, not an amount."""
    if line is None:
        return list_price
    if line.amount is not None:
        return line.amount
    return list_price * line.percent_of_list / Decimal(100)


def ssp_for(charge: Charge | None, on: dt.date, list_price: Decimal) -> Decimal:
    """The standalone selling price of one unit of `charge` on `on`, in the terms of its list
    unit price (per unit per billing period; a one-time fee: per unit). A charge without a book
    line in force that day — or no charge at all (a one-time fee typed on the quote) — sells
    standalone at its list price."""
    line = ssp_line(charge, on=on) if charge is not None else None
    return ssp_value(line, list_price)


def ssp_book(plan_ids) -> dict[tuple[int, str, str], list[StandaloneSellingPrice]]:
    """Every SSP line of the plans in one query, by (plan id, charge key, currency), for callers
    that price many obligations: `ssp_value(book_line(book, charge, on), list_price)`."""
    book: dict[tuple[int, str, str], list[StandaloneSellingPrice]] = {}
    for line in StandaloneSellingPrice.objects.filter(plan_id__in=plan_ids):
        book.setdefault((line.plan_id, line.charge_key, line.currency), []).append(line)
    return book


def book_line(book, charge: Charge | None, on: dt.date) -> StandaloneSellingPrice | None:
    """The line of a preloaded book (ssp_book) in force for the charge on `on`."""
    if charge is None:
        return None
    lines = book.get((charge.plan_id, charge.key, charge.currency), [])
    in_force = [line for line in lines if line.covers(on)]
    return max(in_force, key=lambda line: line.effective_from, default=None)
