"""The rating engine: pure functions, no database, no rounding.

`rate(pricing, quantity)` prices a quantity under a charge's price terms and explains the result;
`rate_events(pricing, amounts)` prices a list of per-event monetary amounts (percentage model).
`PRICING_MODELS` names every charge model once, with its properties: callers ask
`pricing_model(pricing)` (or `is_rated_on_amounts`) rather than compare model names.
`pricing` is the plain dict a charge produces with `Charge.pricing()` and a subscription item
snapshots; every number in it is a decimal string. Amounts keep full precision: invoice lines
round once (core.money.round_money).

Semantics (docs/catalog.md has a worked example of each):
- Tiers are listed in order; tier k covers the units in (from, up_to], so "up to N" includes N and
  the next tier starts at N + 1. The last tier has no `up_to` (unbounded).
- graduated: units fill tier by tier; a tier's flat fee is added once the tier holds any units
  (more than zero; so at zero units nothing is billed).
- volume: every unit is priced at the tier the total reaches, plus that tier's flat fee; zero units
  reach no tier and cost nothing.
- package: `package_price` per started block of `package_size` units, after free units.
- percentage: per event, rate × amount + fixed fee, then clamped to [min_per_event, max_per_event];
  the first `free_events` events of the period cost nothing.
- free_units (standard, graduated, volume, package) are taken off the quantity before pricing.
- below zero: a period whose net quantity is negative (refund-style corrections on a metric that
  accepts negative values, or events stored before metrics refused them) is rated as 0 units, with
  a step saying so ("net usage −1,000 is below zero: billed as 0"); then minimums apply as usual.
  Under a percentage charge an event amount below zero is rated as an amount of 0.
- min_amount / max_amount bound the charge's amount per period; a shortfall under the minimum is
  a true-up step ("minimum commitment") in the explanation.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from core.errors import ValidationError
from core.money import plain

ZERO = Decimal(0)


@dataclass(frozen=True)
class RatingStep:
    description: str
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    subtotal: Decimal


@dataclass(frozen=True)
class Rating:
    quantity: Decimal
    amount: Decimal
    steps: list[RatingStep] = field(default_factory=list)
    true_up: Decimal = ZERO  # part of amount that tops usage up to the period minimum

    def explanation(self) -> list[dict]:
        return [
            {
                "description": s.description,
                "units": plain(s.units),
                "unit_price": plain(s.unit_price),
                "flat_fee": plain(s.flat_fee),
                "subtotal": plain(s.subtotal),
            }
            for s in self.steps
        ]


def pricing_value(pricing: dict, key: str, default: str | None = "0") -> Decimal | None:
    """A number of a pricing snapshot (`unit_price`, `free_units`…): missing or empty reads as
    `default` (None: absent); the one parser every reader of a snapshot uses."""
    value = pricing.get(key)
    if value is None or value == "":
        return None if default is None else Decimal(default)
    return Decimal(str(value))


def _tiers(pricing: dict) -> list[tuple[Decimal, Decimal | None, Decimal, Decimal]]:
    """[(from, up_to or None, unit_price, flat_fee)], from = previous up_to (0 for the first)."""
    tiers, lower = [], ZERO
    raw = pricing.get("tiers") or []
    for number, tier in enumerate(raw, start=1):
        up_to = pricing_value(tier, "up_to", None)
        last = number == len(raw)
        if (up_to is None) != last or (up_to is not None and up_to <= lower):
            raise ValidationError(
                "Tiers must rise one after the other, and only the last tier is (and must be) "
                "unbounded."
            )
        tiers.append(
            (lower, up_to, pricing_value(tier, "unit_price"), pricing_value(tier, "flat_fee"))
        )
        lower = up_to if up_to is not None else lower
    if not tiers:
        raise ValidationError("A tiered charge needs at least one tier.")
    return tiers


def _n(value: Decimal | int) -> str:
    """A count for people: 1,500 or 2.5 (no trailing zeros, no exponent)."""
    return plain(value, grouping=True)


def _signed(value: Decimal) -> str:
    """A count that may be below zero, with a typographic minus: −1,000."""
    return f"−{_n(-value)}" if value < 0 else _n(value)


def _span(lower: Decimal, up_to: Decimal | None) -> str:
    return f"{_n(lower + 1)}–{_n(up_to)}" if up_to is not None else f"{_n(lower + 1)}+"


def _after_free(pricing: dict, quantity: Decimal, steps: list[RatingStep]) -> Decimal:
    free = pricing_value(pricing, "free_units")
    if free > 0:
        used = min(free, quantity)
        steps.append(RatingStep(f"free allowance ({_n(free)} units)", used, ZERO, ZERO, ZERO))
        return quantity - used
    return quantity


def _flat(pricing: dict, quantity: Decimal) -> list[RatingStep]:
    price = pricing_value(pricing, "unit_price")
    return [RatingStep("flat fee", Decimal(1), price, ZERO, price)]


def _standard(pricing: dict, quantity: Decimal) -> list[RatingStep]:
    steps: list[RatingStep] = []
    billable = _after_free(pricing, quantity, steps)
    price = pricing_value(pricing, "unit_price")
    steps.append(
        RatingStep(f"{_n(billable)} × {plain(price)}", billable, price, ZERO, billable * price)
    )
    return steps


def _graduated(pricing: dict, quantity: Decimal) -> list[RatingStep]:
    steps: list[RatingStep] = []
    billable = _after_free(pricing, quantity, steps)
    for lower, up_to, price, flat in _tiers(pricing):
        if billable <= lower:
            break
        units = (billable if up_to is None else min(billable, up_to)) - lower
        steps.append(
            RatingStep(
                f"tier {_span(lower, up_to)}: {_n(units)} × {plain(price)}"
                + (f" + {plain(flat)} flat" if flat else ""),
                units,
                price,
                flat,
                units * price + flat,
            )
        )
    return steps


def _volume(pricing: dict, quantity: Decimal) -> list[RatingStep]:
    steps: list[RatingStep] = []
    billable = _after_free(pricing, quantity, steps)
    if billable <= 0:
        return steps
    for lower, up_to, price, flat in _tiers(pricing):
        if up_to is None or billable <= up_to:
            steps.append(
                RatingStep(
                    f"all {_n(billable)} units at tier {_span(lower, up_to)}: "
                    f"{_n(billable)} × {plain(price)}" + (f" + {plain(flat)} flat" if flat else ""),
                    billable,
                    price,
                    flat,
                    billable * price + flat,
                )
            )
            return steps
    raise ValidationError(
        f"{_n(billable)} units exceed the last tier: make the last tier unbounded."
    )


def _package(pricing: dict, quantity: Decimal) -> list[RatingStep]:
    steps: list[RatingStep] = []
    billable = _after_free(pricing, quantity, steps)
    size, price = pricing_value(pricing, "package_size"), pricing_value(pricing, "package_price")
    if size <= 0:
        raise ValidationError("A package charge needs a package size above zero.")
    whole, rest = divmod(billable, size)
    packages = whole + (1 if rest else 0)  # exact ceiling, no rounded quotient
    steps.append(
        RatingStep(
            f"{_n(billable)} units in packages of {_n(size)}: {_n(packages)} × {plain(price)}",
            packages,
            price,
            ZERO,
            packages * price,
        )
    )
    return steps


# --- the pricing models, named once ---------------------------------------------------------


@dataclass(frozen=True)
class PricingModel:
    """One charge model and what the rest of the code needs to know about it.

    `name` is the stored value (`Charge.charge_model`, a snapshot's `pricing["model"]`): never
    rename one, subscriptions keep it. Adding a model is one entry here (and its rating function);
    the admin's choices, `Charge.clean`, `Charge.pricing` and every caller ask these properties.
    """

    name: str
    label: str  # the admin's choice label
    rate: Callable[[dict, Decimal], list[RatingStep]] | None  # None: rated with rate_events
    unit_price: bool = False  # priced by `unit_price`, which a quote or contract may negotiate
    tiered: bool = False  # priced by `tiers`
    package: bool = False  # priced by `package_size` and `package_price`
    on_amounts: bool = False  # rated from each event's amount (rate_events), not a quantity
    fixed_fee: bool = False  # the same amount whatever the quantity

    @property
    def free_units(self) -> bool:
        """Whether free units come off the quantity (free events, not units, for amounts)."""
        return not (self.fixed_fee or self.on_amounts)


PRICING_MODELS: dict[str, PricingModel] = {
    m.name: m
    for m in [
        PricingModel("flat", "Flat fee per period", _flat, unit_price=True, fixed_fee=True),
        PricingModel("standard", "Standard (unit price × quantity)", _standard, unit_price=True),
        PricingModel(
            "graduated", "Graduated tiers (each tier at its own price)", _graduated, tiered=True
        ),
        PricingModel(
            "volume", "Volume tiers (all units at the tier reached)", _volume, tiered=True
        ),
        PricingModel("package", "Package (price per block of units)", _package, package=True),
        PricingModel("percentage", "Percentage of an amount per event", None, on_amounts=True),
    ]
}


def pricing_model(pricing_or_name: dict | str | None, *, strict: bool = True) -> PricingModel:
    """The model of a pricing dict (or of a model name).

    A name no model has is refused; with strict=False it reads as a model with none of the
    properties (no unit price, no tiers…), which rating then refuses.
    """
    name = pricing_or_name.get("model") if isinstance(pricing_or_name, dict) else pricing_or_name
    try:
        return PRICING_MODELS[name]
    except (KeyError, TypeError):
        if strict:
            raise ValidationError(f"Unknown charge model {name!r}.") from None
        return PricingModel(str(name), str(name), None)


def is_rated_on_amounts(pricing: dict) -> bool:
    """Whether the pricing is rated from event amounts (rate_events) rather than a quantity."""
    return pricing_model(pricing, strict=False).on_amounts


def model_names(test: Callable[[PricingModel], bool], last: str = "and") -> str:
    """The names of the models that pass `test`, for messages: "graduated and volume"."""
    names = [m.name for m in PRICING_MODELS.values() if test(m)]
    return ", ".join(names[:-1]) + (f" {last} " if len(names) > 1 else "") + names[-1]


def _bounded(pricing: dict, quantity: Decimal, steps: list[RatingStep]) -> Rating:
    amount = sum((s.subtotal for s in steps), ZERO)
    minimum, maximum = (
        pricing_value(pricing, "min_amount", None),
        pricing_value(pricing, "max_amount", None),
    )
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValidationError("The minimum per period is above the cap: lower it or raise the cap.")
    true_up = ZERO
    if maximum is not None and amount > maximum:
        steps.append(RatingStep(f"capped at {plain(maximum)}", ZERO, ZERO, ZERO, maximum - amount))
        amount = maximum
    if minimum is not None and amount < minimum:
        true_up = minimum - amount
        steps.append(
            RatingStep(
                f"minimum commitment {plain(minimum)}: true-up", ZERO, ZERO, true_up, true_up
            )
        )
        amount = minimum
    return Rating(quantity=quantity, amount=amount, steps=steps, true_up=true_up)


# Exact arithmetic: enough digits for any 28-digit quantity times a 28-digit price, and an error
# rather than a silently rounded result if that were ever not enough.
EXACT = Context(prec=120, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def rate(pricing: dict, quantity: Decimal) -> Rating:
    """Price a quantity of units (every model but percentage)."""
    if not isinstance(quantity, Decimal):
        raise TypeError(f"quantity must be a Decimal, got {type(quantity).__name__}")
    if not quantity.is_finite():
        raise ValidationError(f"Cannot rate a quantity of {quantity}.")
    with localcontext(EXACT):
        return _rate(pricing, quantity)


def _rate(pricing: dict, quantity: Decimal) -> Rating:
    model = pricing_model(pricing)
    if model.rate is None:
        raise ValidationError(
            f"A {model.name} charge is rated from event amounts: use rate_events."
        )
    if quantity < 0:
        # Refund-style corrections outweighed the usage: the period is priced as zero units (a
        # refund is a credit note, never a negative usage line), minimums and flat fees included.
        below = RatingStep(
            f"net usage {_signed(quantity)} is below zero: billed as 0", quantity, ZERO, ZERO, ZERO
        )
        return _bounded(pricing, quantity, [below, *model.rate(pricing, ZERO)])
    return _bounded(pricing, quantity, model.rate(pricing, quantity))


def rate_events(pricing: dict, amounts: Sequence[Decimal]) -> Rating:
    """Price a period's events under a percentage charge; `amounts` in event (time) order.

    An amount below zero (a correction sent before its metric refused them) is rated as an
    amount of 0: a refund is a credit note, not a negative event."""
    if not is_rated_on_amounts(pricing):
        raise ValidationError("rate_events prices percentage charges only.")
    with localcontext(EXACT):
        return _rate_events(pricing, amounts)


def _rate_events(pricing: dict, amounts: Sequence[Decimal]) -> Rating:
    rate_ = pricing_value(pricing, "rate") / 100
    fixed = pricing_value(pricing, "fixed_fee")
    free = pricing_value(pricing, "free_events")
    if free != free.to_integral_value():
        raise ValidationError("Free events are a whole number.")
    free_events = int(free)
    low, high = (
        pricing_value(pricing, "min_per_event", None),
        pricing_value(pricing, "max_per_event", None),
    )
    if low is not None and high is not None and low > high:
        raise ValidationError("The minimum per event is above the maximum per event.")
    total, base, fees, clamped_up, clamped_down, below = ZERO, ZERO, ZERO, 0, 0, 0
    for index, amount in enumerate(amounts):
        if not isinstance(amount, Decimal):
            raise TypeError(f"event amounts must be Decimals, got {type(amount).__name__}")
        if not amount.is_finite():
            raise ValidationError(f"Cannot rate an event amount of {amount}.")
        if index < free_events:
            continue
        if amount < 0:
            amount, below = ZERO, below + 1
        base += amount
        fee = amount * rate_ + fixed
        if low is not None and fee < low:
            fee, clamped_up = low, clamped_up + 1
        elif high is not None and fee > high:
            fee, clamped_down = high, clamped_down + 1
        fees += fee
    count = len(amounts)
    charged = max(count - free_events, 0)
    total = fees
    detail = f"{plain(rate_ * 100)} % of {_n(base)}" + (
        f" + {plain(fixed)} per event" if fixed else ""
    )
    notes = []
    if free_events:
        notes.append(f"{min(free_events, count)} free events")
    if below:
        notes.append(f"{below} below zero rated as 0")
    if clamped_up:
        notes.append(f"{clamped_up} raised to the minimum {plain(low)}")
    if clamped_down:
        notes.append(f"{clamped_down} capped at {plain(high)}")
    if notes:
        detail += " (" + ", ".join(notes) + ")"
    noun = "event" if charged == 1 else "events"
    steps = [RatingStep(f"{_n(charged)} {noun}: {detail}", Decimal(charged), rate_, ZERO, total)]
    return _bounded(pricing, Decimal(count), steps)


def tier_problems(tiers: list[dict]) -> list[str]:
    """What is wrong with a tier list, in words finance can act on (empty when it is valid).

    Tiers must start at 0, follow each other without gap or overlap (each starts where the
    previous one ends), have an upper bound above their start, and only the last is unbounded.
    """
    if not tiers:
        return ["Add at least one tier."]
    problems = []
    expected = ZERO
    for number, tier in enumerate(tiers, start=1):
        start = pricing_value(tier, "from")
        up_to = pricing_value(tier, "up_to", None)
        last = number == len(tiers)
        if number == 1 and start != 0:
            problems.append(f"The first tier must start at 0, not {_n(start)}.")
        elif number > 1 and start < expected:
            problems.append(f"Tier {number} starts at {_n(start)}: it overlaps the tier before it.")
        elif number > 1 and start > expected:
            problems.append(
                f"Tier {number} starts at {_n(start)} but the tier before ends at {_n(expected)}: "
                "units in between would have no price."
            )
        if up_to is None and not last:
            problems.append(
                f"Tier {number} has no upper bound: only the last tier may be unbounded."
            )
        if up_to is not None and up_to <= start:
            problems.append(f"Tier {number} must end above where it starts ({_n(start)}).")
        if last and up_to is not None:
            problems.append(
                "Leave the last tier's upper bound empty so every quantity has a price."
            )
        for key in ("unit_price", "flat_fee"):
            if pricing_value(tier, key) < 0:
                problems.append(f"Tier {number} has a negative {key.replace('_', ' ')}.")
        expected = up_to if up_to is not None else start
    return problems
