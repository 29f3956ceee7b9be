"""A realistic quote to render: a two-year hybrid deal with a discount, a seat ramp, negotiated
usage tiers with a minimum commitment, one-time fees and prepaid credits (figures in
tests/quotes/test_documents.py)."""

import datetime as dt
from decimal import Decimal

from catalog.models import Charge, ChargeTier
from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    QuoteFactory,
    UserFactory,
)


def growth_plan():
    """Platform fee $1,500, seats $40, API calls graduated: first 1,000,000 at $0.002, then
    $0.0015 (all per month)."""
    plan = PlanFactory(code="growth", name="Tessellate Growth")
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("1500"), position=0)
    ChargeFactory(plan=plan, name="Seats", unit_price=Decimal("40"), unit_name="seat", position=1)
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        charge_model=Charge.Model.GRADUATED,
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0"),
        unit_name="call",
        default_quantity=Decimal("0"),
        position=2,
    )
    ChargeTier.objects.create(charge=calls, up_to=1_000_000, unit_price=Decimal("0.002"))
    ChargeTier.objects.create(charge=calls, from_units=1_000_000, unit_price=Decimal("0.0015"))
    return plan


def realistic_quote(*, customer=None, status=Quote.Status.APPROVED) -> Quote:
    """Northwind's 24-month quote, starting Apr 1, 2026, valid until Mar 31, 2026."""
    customer = customer or CustomerFactory(
        external_id="northwind",
        name="Northwind Traders, Inc.",
        address="200 Pine Street, Floor 4\nSeattle, WA 98101\nUSA",
        billing_email="ap@northwind.example",
    )
    plan = growth_plan()
    rep = UserFactory(
        username="dana", first_name="Dana", last_name="Whitfield", email="dana@tessellate.example"
    )
    quote = QuoteFactory(
        customer=customer,
        plan=plan,
        owner=rep,
        title="Tessellate Growth — two-year platform agreement",
        start_date=dt.date(2026, 4, 1),
        term_months=24,
        valid_until=dt.date(2026, 3, 31),
        payment_terms_days=30,
        notes="Prices exclude taxes. Seats can be added at the phase's net price at any time.",
        status=status,
    )
    charges = {c.name: c for c in plan.charges.all()}

    def line(kind, position, **fields):
        return QuoteLine.objects.create(quote=quote, kind=kind, position=position, **fields)

    platform = charges["Platform fee"]
    line("recurring", 0, charge=platform, description="Platform fee", discount_percent=10)
    seats = line("recurring", 1, charge=charges["Seats"], description="Seats", quantity=100)
    QuoteLinePhase.objects.create(
        line=seats, start_month=1, end_month=12, quantity=100, unit_price=Decimal("38")
    )
    QuoteLinePhase.objects.create(
        line=seats, start_month=13, end_month=24, quantity=150, unit_price=Decimal("36")
    )
    calls = line(
        "usage",
        2,
        charge=charges["API calls"],
        description="API calls",
        quantity=0,
        estimated_quantity=Decimal("2500000"),
        minimum_amount=Decimal("1000"),
    )
    for position, (up_to, price) in enumerate(
        [(1_000_000, "0.0018"), (10_000_000, "0.0012"), (None, "0.001")]
    ):
        QuoteLineTier.objects.create(
            line=calls, up_to=up_to, unit_price=Decimal(price), position=position
        )
    line("one_time", 3, description="Implementation and onboarding", unit_price=Decimal("5000"))
    line(
        "one_time",
        4,
        description="Admin training (half day)",
        quantity=2,
        unit_price=Decimal("1200"),
        discount_percent=25,
    )
    line("credit", 5, description="Prepaid usage credits", unit_price=Decimal("2000"))
    return quote
