"""What a quote line may say, checked where it is typed (the line's form, its tiers' and phases'
forms) and again before a quote is submitted, sent or accepted: each message names the field
that is wrong and what to do. Returns problems; raises nothing (callers decide how to report)."""

from decimal import Decimal

from catalog import rating
from quotes import pricing

ZERO = Decimal(0)


def line_problems(line) -> dict[str, str]:
    """The line's own fields (its kind follows its charge: recurring fee or usage)."""
    errors: dict[str, str] = {}
    charge = line.charge if line.charge_id else None
    once = line.kind in ("one_time", "credit")
    if charge is not None and not once:
        line.kind = "usage" if charge.metric_id else "recurring"
    quote = line.quote if line.quote_id or type(line).quote.is_cached(line) else None
    if once:
        if charge is not None:
            errors["charge"] = (
                f"A {line.get_kind_display().lower()} line is typed, not taken from the plan: "
                "leave its charge empty."
            )
        if line.unit_price is None:
            what = "credit granted" if line.kind == "credit" else "fee's price"
            errors["unit_price"] = f"Give the {what} (the unit price)."
        if not line.description:
            errors["description"] = "Describe the line (it is printed on the quote and invoice)."
    elif charge is None:
        errors["charge"] = (
            "Choose one of the plan's charges, or make the line a one-time fee or prepaid credits."
        )
    if charge is not None and not once:
        if quote is not None and quote.customer_id and charge.currency != quote.currency:
            errors["charge"] = (
                f"Charge '{charge.name}' is priced in {charge.currency}, not {quote.currency} "
                "(the customer's currency): choose one of the plan's charges in "
                f"{quote.currency}."
            )
        model = charge.pricing_model
        if line.unit_price is not None and not model.unit_price:
            errors["unit_price"] = (
                f"'{charge.name}' is priced by its {charge.get_charge_model_display()} terms, "
                "not by a unit price: leave its price empty (negotiate its tiers or give a "
                "percentage discount)."
            )
        if line.discount_amount and not model.unit_price:
            errors["discount_amount"] = (
                f"'{charge.name}' has no unit price to take an amount off: give a percentage "
                "discount or negotiate its tiers."
            )
    if line.discount_percent is not None and line.discount_amount is not None:
        errors["discount_amount"] = "Give a discount as a percentage or an amount, not both."
    elif line.discount_amount and "discount_amount" not in errors and "charge" not in errors:
        listed = line.unit_price
        if listed is None and charge is not None:
            listed = rating.pricing_value(charge.pricing(), "unit_price", None)
        if listed is not None and line.discount_amount > listed:
            errors["discount_amount"] = (
                f"The discount ({pricing.price(line.discount_amount)}) is more than the unit "
                f"price ({pricing.price(listed)})."
            )
    if line.kind != "usage":
        if line.estimated_quantity is not None:
            errors["estimated_quantity"] = "Only a usage line has an estimated quantity."
        if line.minimum_amount is not None:
            errors["minimum_amount"] = "Only a usage line has a minimum commitment."
    return errors


def tier_problems(line, tiers: list[dict]) -> list[str]:
    """Negotiated tiers (the rating engine's shape, quotes.totals.tiers_as_pricing): checked
    like the catalog's."""
    if not tiers:
        return []
    charge = line.charge if line.charge_id else None
    if charge is None or not charge.pricing_model.tiered:
        return ["Only a line on a graduated or volume charge has tiers."]
    return rating.tier_problems(tiers)


def phase_problems(line, phases, *, term_months: int, interval: int) -> list[str]:
    """A ramp's phases (objects with start_month, end_month) cover months 1 to the term, in
    order, without gap or overlap, each starting on a billing period."""
    if not phases:
        return []
    if line.kind != "recurring":
        return ["Only a recurring fee ramps; a usage line's price holds over the term."]
    problems = []
    expected = 1
    for phase in sorted(phases, key=lambda p: (p.start_month, p.end_month)):
        start, end = phase.start_month, phase.end_month
        if end < start:
            problems.append(f"Months {start}–{end}: the phase ends before it starts.")
            continue
        if start < expected:
            problems.append(
                f"Months {start}–{end} overlap the phase before (it ends at month {expected - 1})."
            )
        elif start > expected:
            problems.append(f"Months {expected}–{start - 1} are in no phase.")
        if (start - 1) % interval:
            problems.append(
                f"Months {start}–{end}: a phase starts with a billing period (billed every "
                f"{interval} months: month 1, {1 + interval}, {1 + 2 * interval}…)."
            )
        expected = max(expected, end + 1)
    if expected <= term_months:
        problems.append(
            f"Months {expected}–{term_months} of the {term_months}-month term are in no phase."
        )
    elif expected > term_months + 1:
        problems.append(
            f"The phases run to month {expected - 1}, past the {term_months}-month term."
        )
    return problems
