"""Finance configures metrics, plans, charges and tiers in the admin; bad setups are refused."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from catalog.models import BillableMetric, Charge, ChargeTier, Plan
from tests.factories import MetricFactory, PlanFactory, UserFactory


@pytest.fixture
def finance(db, client):
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


def _tiers(rows):
    data = {
        "tiers-TOTAL_FORMS": str(len(rows)),
        "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
    }
    for i, (start, up_to, price) in enumerate(rows):
        data |= {
            f"tiers-{i}-from_units": start,
            f"tiers-{i}-up_to": up_to,
            f"tiers-{i}-unit_price": price,
            f"tiers-{i}-flat_fee": "0",
        }
    return data


def _charge(plan, metric, **overrides):
    return {
        "plan": plan.pk,
        "name": "API calls",
        "key": "",
        "position": "0",
        "metric": metric.pk,
        "group_value": "",
        "unit_name": "call",
        "default_quantity": "0",
        "charge_model": "graduated",
        "billing_timing": "in_arrears",
        "currency": "USD",
        "unit_price": "0",
        "free_units": "0",
        "fixed_fee": "0",
        "free_events": "0",
        **overrides,
    }


GOOD_TIERS = [("0", "100", "1.00"), ("100", "500", "0.80"), ("500", "", "0.50")]


def test_graduated_charge_with_tiers_is_saved(finance):
    plan, metric = PlanFactory(), MetricFactory()
    response = finance.post(
        "/admin/catalog/charge/add/", _charge(plan, metric) | _tiers(GOOD_TIERS)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    charge = Charge.objects.get()
    assert (charge.key, charge.currency) == ("api-calls", "USD")
    assert charge.pricing()["tiers"] == [
        {
            "from": "0.000000",
            "up_to": "100.000000",
            "unit_price": "1.000000000000",
            "flat_fee": "0E-12",
        },
        {
            "from": "100.000000",
            "up_to": "500.000000",
            "unit_price": "0.800000000000",
            "flat_fee": "0E-12",
        },
        {"from": "500.000000", "up_to": None, "unit_price": "0.500000000000", "flat_fee": "0E-12"},
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("10", "100", "1"), ("100", "", "0.5")], "The first tier must start at 0, not 10."),
        (
            [("0", "100", "1"), ("90", "", "0.5")],
            "Tier 2 starts at 90: it overlaps the tier before it.",
        ),
        (
            [("0", "100", "1"), ("150", "", "0.5")],
            "Tier 2 starts at 150 but the tier before ends at 100",
        ),
        (
            [("0", "", "1"), ("100", "", "0.5")],
            "Tier 1 has no upper bound: only the last tier may be unbounded.",
        ),
        ([("0", "100", "1")], "Leave the last tier&#x27;s upper bound empty"),
        ([], "Add at least one tier."),
    ],
)
def test_bad_tiers_are_refused_with_a_message_and_nothing_is_saved(finance, rows, message):
    plan, metric = PlanFactory(), MetricFactory()
    response = finance.post("/admin/catalog/charge/add/", _charge(plan, metric) | _tiers(rows))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert (Charge.objects.count(), ChargeTier.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"charge_model": "standard", "unit_price": "-1"},
            "Ensure this value is greater than or equal to 0.",
        ),
        (
            {"charge_model": "percentage", "percentage_rate": "150"},
            "Ensure this value is less than or equal to 100.",
        ),
        ({"charge_model": "standard", "currency": "EUR"}, "add EUR to its currencies first"),
        (
            {"charge_model": "package", "package_size": "0", "package_price": "10"},
            "package size above zero",
        ),
        ({"charge_model": "standard", "billing_timing": "in_advance"}, "bill in arrears"),
        ({"charge_model": "percentage", "percentage_rate": "1.5"}, "choose a metric that sums"),
        (
            {"charge_model": "standard", "min_amount": "100", "max_amount": "50"},
            "below the minimum",
        ),
    ],
)
def test_invalid_charges_are_refused(finance, overrides, message):
    plan, metric = PlanFactory(), MetricFactory()
    response = finance.post(
        "/admin/catalog/charge/add/", _charge(plan, metric, **overrides) | _tiers([])
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Charge.objects.count() == 0


def test_a_metric_that_needs_a_property_must_name_it(finance):
    response = finance.post(
        "/admin/catalog/billablemetric/add/",
        {
            "code": "tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "field_name": "",
            "filters": "{}",
        },
    )
    assert response.status_code == 200
    assert "reads a property: name it" in response.content.decode()
    assert BillableMetric.objects.count() == 0


def test_plan_page_previews_the_price_at_a_quantity(finance):
    plan = PlanFactory()
    charge = Charge.objects.create(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        charge_model="graduated",
        billing_timing="in_arrears",
        default_quantity=Decimal(0),
    )
    for start, up_to, price in [(0, 100, "1.00"), (100, 500, "0.80"), (500, None, "0.50")]:
        ChargeTier.objects.create(
            charge=charge, from_units=start, up_to=up_to, unit_price=Decimal(price)
        )
    page = finance.get(f"/admin/catalog/plan/{plan.pk}/change/?preview_units=650").content.decode()
    assert "<strong>$495.00</strong>" in page
    assert "tier 501+: 150 × 0.5 = $75.00" in page
    bad = finance.get(f"/admin/catalog/plan/{plan.pk}/change/?preview_units=abc").content.decode()
    assert "Enter units from 0 to under 10^15" in bad


def test_plan_currencies_must_be_iso_codes(finance):
    response = finance.post(
        "/admin/catalog/plan/add/",
        {
            "code": "growth",
            "name": "Growth",
            "currency": "USD",
            "additional_currencies": "EUR, XYZ",
            "billing_interval_months": "1",
            "trial_days": "0",
            "active": "on",
            "charges-TOTAL_FORMS": "0",
            "charges-INITIAL_FORMS": "0",
            "charges-MIN_NUM_FORMS": "0",
            "charges-MAX_NUM_FORMS": "1000",
        },
    )
    assert "Unknown currency code(s): XYZ." in response.content.decode()
    assert Plan.objects.count() == 0
