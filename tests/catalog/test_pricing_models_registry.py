"""catalog.rating.PRICING_MODELS: every charge model named once, with its properties."""

from decimal import Decimal

import pytest

from catalog.models import Charge
from catalog.rating import (
    PRICING_MODELS,
    is_rated_on_amounts,
    model_names,
    pricing_model,
    rate,
    rate_events,
)
from core.errors import ValidationError
from tests.factories import ChargeFactory


def test_the_stored_names_and_labels_are_unchanged():
    # The values subscriptions snapshot and the migrations list: renaming one needs a migration
    assert Charge.Model.choices == [
        ("flat", "Flat fee per period"),
        ("standard", "Standard (unit price × quantity)"),
        ("graduated", "Graduated tiers (each tier at its own price)"),
        ("volume", "Volume tiers (all units at the tier reached)"),
        ("package", "Package (price per block of units)"),
        ("percentage", "Percentage of an amount per event"),
    ]
    assert Charge.Model.PERCENTAGE == "percentage"
    assert list(PRICING_MODELS) == [value for value, _ in Charge.Model.choices]


def test_each_model_has_its_properties():
    def names(attribute):
        return [name for name, m in PRICING_MODELS.items() if getattr(m, attribute)]

    assert names("unit_price") == ["flat", "standard"]
    assert names("tiered") == ["graduated", "volume"]
    assert names("package") == ["package"]
    assert names("on_amounts") == ["percentage"]
    assert names("fixed_fee") == ["flat"]
    assert names("free_units") == ["standard", "graduated", "volume", "package"]


def test_names_for_messages():
    assert model_names(lambda m: m.tiered) == "graduated and volume"
    assert model_names(lambda m: m.tiered, last="or") == "graduated or volume"
    assert model_names(lambda m: m.free_units) == "standard, graduated, volume and package"
    assert model_names(lambda m: m.on_amounts) == "percentage"


@pytest.mark.parametrize("pricing", [{"model": "tiered"}, {"model": None}, {}, {"model": [1]}])
def test_an_unknown_model_is_refused_unless_asked_leniently(pricing):
    with pytest.raises(ValidationError, match="Unknown charge model"):
        pricing_model(pricing)
    lenient = pricing_model(pricing, strict=False)
    assert not (lenient.unit_price or lenient.tiered or lenient.on_amounts or lenient.package)
    assert is_rated_on_amounts(pricing) is False


PRICINGS = {
    "flat": {"model": "flat", "unit_price": "10"},
    "standard": {"model": "standard", "unit_price": "2"},
    "graduated": {"model": "graduated", "tiers": [{"up_to": None, "unit_price": "2"}]},
    "volume": {"model": "volume", "tiers": [{"up_to": None, "unit_price": "2"}]},
    "package": {"model": "package", "package_size": "1", "package_price": "2"},
    "percentage": {"model": "percentage", "rate": "50"},
}


@pytest.mark.parametrize("name", list(PRICING_MODELS))
def test_every_registered_model_is_rated_by_its_entry_point(name):
    model = PRICING_MODELS[name]
    if model.on_amounts:
        # 50 % of 4 + 50 % of 6 = 5
        assert rate_events(PRICINGS[name], [Decimal(4), Decimal(6)]).amount == Decimal(5)
        with pytest.raises(ValidationError, match="use rate_events"):
            rate(PRICINGS[name], Decimal(5))
    else:
        # 5 units at 2 = 10 (the flat fee is 10 whatever the quantity)
        assert rate(PRICINGS[name], Decimal(5)).amount == Decimal(10)
        with pytest.raises(ValidationError, match="percentage charges only"):
            rate_events(PRICINGS[name], [Decimal(1)])


@pytest.mark.parametrize("name", list(PRICING_MODELS))
def test_a_charges_terms_follow_its_models_properties(db, name):
    charge = ChargeFactory(
        charge_model=name, package_size=Decimal(5), package_price=Decimal(1), percentage_rate=1
    )
    terms = charge.pricing()
    model = PRICING_MODELS[name]

    assert terms["model"] == name
    assert ("unit_price" in terms) is model.unit_price
    assert ("tiers" in terms) is model.tiered
    assert ("package_size" in terms) is model.package
    assert ("rate" in terms) is model.on_amounts
