"""The rating engine: pure functions, no database, no rounding.

`rate(pricing, quantity)` prices a quantity under a charge's price terms (the plain dict a charge
produces with `Charge.pricing()` and a subscription item snapshots) and explains the result.
Amounts keep full precision; invoice lines round once (core.money.round_money).
"""

from dataclasses import dataclass, field
from decimal import Decimal

from core.errors import ValidationError


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

    def explanation(self) -> list[dict]:
        return [
            {
                "description": s.description,
                "units": str(s.units),
                "unit_price": str(s.unit_price),
                "flat_fee": str(s.flat_fee),
                "subtotal": str(s.subtotal),
            }
            for s in self.steps
        ]


def _standard(pricing: dict, quantity: Decimal) -> Rating:
    unit_price = Decimal(pricing["unit_price"])
    amount = quantity * unit_price
    step = RatingStep(f"{quantity} × {unit_price}", quantity, unit_price, Decimal(0), amount)
    return Rating(quantity=quantity, amount=amount, steps=[step])


MODELS = {"standard": _standard}


def rate(pricing: dict, quantity: Decimal) -> Rating:
    if not isinstance(quantity, Decimal):
        raise TypeError(f"quantity must be a Decimal, got {type(quantity).__name__}")
    if quantity < 0:
        raise ValidationError(f"Cannot rate a negative quantity ({quantity}).")
    try:
        model = MODELS[pricing["model"]]
    except KeyError as exc:
        raise ValidationError(f"Unknown charge model {pricing.get('model')!r}.") from exc
    return model(pricing, quantity)
