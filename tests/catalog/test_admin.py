"""Finance configures metrics, plans, charges and tiers in the admin; bad setups are refused."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from catalog.models import BillableMetric, Charge, ChargeTier, Plan
from tests.factories import (
    MetricFactory,
    PlanFactory,
    TokensMetricFactory,
    UserFactory,
    hybrid_plan,
)

# A raw decimal (2250.000000000000, 0.000004000000) or an exponent (0E-12) shown to a person.
RAW_NUMBER = re.compile(r"\d\.\d{5,}0\b|E-\d")


def _visible(html: str) -> str:
    """The page without its inputs' values (editable fields stay inputs) and scripts."""
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return re.sub(r"<(input|textarea|option)[^>]*>", "", html)


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


def _tokens_and_calls_plan():
    """A graduated tokens charge and a standard api_calls charge (plus the hybrid fixed fees)."""
    plan = hybrid_plan()
    tokens = Charge.objects.create(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        charge_model="graduated",
        billing_timing="in_arrears",
        unit_name="token",
        default_quantity=Decimal(0),
        position=3,
    )
    ChargeTier.objects.create(
        charge=tokens, from_units=0, up_to=10_000_000, unit_price=Decimal("0.000004")
    )
    ChargeTier.objects.create(
        charge=tokens, from_units=10_000_000, up_to=None, unit_price=Decimal("0.000003")
    )
    return plan


def _preview(page: str) -> dict[str, str]:
    rows = re.findall(
        r'<tr class="[^"]*preview-row">\s*<td[^>]*><span class="font-medium">([^<]+)</span>'
        r".*?<strong>([^<]+)</strong></td>",
        page,
        re.S,
    )
    return dict(rows) | {"total": re.search(r'id="preview-total">([^<]+)<', page).group(1)}


def test_plan_preview_takes_a_quantity_per_metric_and_rates_each_charge(finance):
    plan = _tokens_and_calls_plan()
    url = f"/admin/catalog/plan/{plan.pk}/change/"

    page = finance.get(url, {"m_tokens": "15000000", "m_api_calls": "12000", "c_seats": "8"})

    assert _preview(page.content.decode()) == {
        "Platform fee": "$500.00",
        "Seats": "$200.00",  # 8 × $25
        "API calls": "$24.00",  # 12,000 × $0.002
        "Tokens": "$55.00",  # 10,000,000 × $0.000004 + 5,000,000 × $0.000003
        "total": "$779.00",
    }
    html = page.content.decode()
    assert "tier 10,000,001+: 5,000,000 × $0.000003" in html  # prices read in the currency
    assert ">$15.00<" in html  # the tier's amount
    assert "8 × $25.00" in html and "12,000 × $0.002" in html
    assert ">8 seats<" in html and ">15,000,000 tokens<" in html  # units in the plural
    assert 'name="m_tokens" value="15000000"' in html and 'name="c_seats" value="8"' in html

    other = finance.get(url, {"m_tokens": "1000", "m_api_calls": "0", "c_seats": "1"})
    assert _preview(other.content.decode()) == {
        "Platform fee": "$500.00",
        "Seats": "$25.00",
        "API calls": "$0.00",
        "Tokens": "$0.00",  # 1,000 × $0.000004 = $0.004, rounded to the cent
        "total": "$525.00",
    }
    html = other.content.decode()
    assert ">$0.004<" in html  # the step itself is exact, as the portal and the PDF show it
    assert ">1 seat<" in html


def test_plan_preview_refuses_what_is_not_a_quantity(finance):
    plan = _tokens_and_calls_plan()
    page = finance.get(f"/admin/catalog/plan/{plan.pk}/change/", {"m_tokens": "abc"})
    assert "Enter quantities from 0 to under 10^15" in page.content.decode()


def test_plan_and_charge_pages_show_prices_and_tiers_not_raw_numbers(finance):
    plan = _tokens_and_calls_plan()
    tokens = plan.charges.get(name="Tokens")
    for url in (
        f"/admin/catalog/plan/{plan.pk}/change/",
        f"/admin/catalog/charge/{tokens.pk}/change/",
        "/admin/catalog/charge/",
    ):
        html = finance.get(url).content.decode()
        assert "$0.000004" in html and "$0.000003" in html, url
        assert not RAW_NUMBER.search(_visible(html)), (url, RAW_NUMBER.search(_visible(html)))


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
