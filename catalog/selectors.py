import datetime as dt

from django.db.models import Q

from catalog.models import Charge, Plan


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
