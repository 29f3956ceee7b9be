"""The subscription page shows the contract's terms: net price beside list price, the discount,
a ramp by phase and a one-time fee."""

from decimal import Decimal

from django.urls import reverse

from subscriptions.services import ItemSpec, PhaseSpec, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, PlanFactory, day


def standard(price: str) -> dict:
    return {"model": "standard", "unit_price": price}


def test_the_item_tab_shows_list_and_net_price_the_discount_and_the_ramp(admin_client):
    plan = PlanFactory()
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=Decimal("40"), unit_name="seat")
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_ramp",
        start_date=day("2026-01-01"),
        term_months=12,
        items=[
            ItemSpec(
                charge=seats,
                quantity=Decimal("100"),
                pricing=standard("36"),
                discount_percent=Decimal("10"),
                phases=[
                    PhaseSpec(day("2026-01-01"), day("2026-07-01"), Decimal("100"), standard("36")),
                    PhaseSpec(day("2026-07-01"), day("2027-01-01"), Decimal("150"), standard("38")),
                ],
            ),
            ItemSpec(
                charge=None,
                quantity=Decimal("1"),
                name="Implementation",
                pricing={"model": "flat", "unit_price": "5000"},
                one_time=True,
            ),
        ],
    )

    response = admin_client.get(
        reverse("admin:subscriptions_subscription_change", args=[subscription.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Standard · $36.00 per unit" in html  # net
    assert "Standard · $40.00 per unit" in html  # list, beside it
    assert "10% off" in html
    # the ramp by phase: 100 × 36.00 = 3,600.00 a month, then 150 × 38.00 = 5,700.00
    assert "Jan 1, 2026 – Jun 30, 2026" in html and "$3,600.00" in html
    assert "Jul 1, 2026 – Dec 31, 2026" in html and "$5,700.00" in html
    assert "Once, on the first invoice" in html
    assert "Flat · $5,000.00, once" in html
