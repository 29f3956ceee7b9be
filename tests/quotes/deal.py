"""The deal the quote tests build: Northwind's two-year hybrid contract on the Scale plan.

Catalog (plan "scale", monthly, USD): platform fee 1,000.00 flat; seats 40.00 per seat; API
calls graduated, 0–1,000,000 at 0.002 and above at 0.0015.

Quote (24 months from Jan 1, 2027):
- Platform fee: 1 × 1,000.00, as listed.
- Seats: 10 % off; a ramp: months 1–12, 100 seats (40.00 → 36.00); months 13–24, 150 seats at a
  negotiated 38.00 (→ 34.20).
- API calls: negotiated tiers 0–2,000,000 at 0.0018 and above at 0.0009; an estimate of
  3,000,000 calls a month; a minimum commitment of 3,000.00 a month.
- Implementation: a one-time fee of 12,000.00, 25 % off (9,000.00).

Hand-computed figures (docs/quotes.md walks through them):
- seats: 100 × 36.00 = 3,600.00 a month, then 150 × 34.20 = 5,130.00.
- calls, estimated: 2,000,000 × 0.0018 + 1,000,000 × 0.0009 = 3,600 + 900 = 4,500.00 a month
  (list: 1,000,000 × 0.002 + 2,000,000 × 0.0015 = 5,000.00); committed 3,000.00 a month.
- MRR month 1 = 1,000 + 3,600 = 4,600.00; at full ramp 1,000 + 5,130 = 6,130.00; ARR 73,560.00.
- recurring over the term = 12 × 4,600 + 12 × 6,130 = 128,760.00; commitments 24 × 3,000 =
  72,000.00; one-time 9,000.00; TCV = 209,760.00; ACV = (209,760 − 9,000) / 2 = 100,380.00;
  first year = 12 × (4,600 + 3,000) + 9,000 = 100,200.00; estimated usage beyond the commitment
  24 × 1,500 = 36,000.00.
- list = 24,000 + (12 × 4,000 + 12 × 6,000) + 24 × 5,000 + 12,000 = 276,000.00; net = 209,760 +
  36,000 = 245,760.00; discount 30,240.00 (10.96 %).
"""

import datetime as dt
from decimal import Decimal as D

from catalog.models import BillableMetric, Charge, ChargeTier, Plan
from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier
from tests.factories import CustomerFactory

START = dt.date(2027, 1, 1)


def scale_plan(*, calls_counted: bool = True) -> Plan:
    """The catalog above. calls_counted=False: the calls are the sum of each event's `calls`
    property (a test sends a month's calls in a few events rather than millions)."""
    plan = Plan.objects.create(
        code="scale", name="Scale", currency="USD", billing_interval_months=1
    )
    advance, arrears = Charge.Timing.IN_ADVANCE, Charge.Timing.IN_ARREARS
    Charge.objects.create(
        plan=plan, name="Platform fee", charge_model=Charge.Model.FLAT, billing_timing=advance,
        unit_price=D("1000"), position=0,
    )  # fmt: skip
    Charge.objects.create(
        plan=plan, name="Seats", charge_model=Charge.Model.STANDARD, billing_timing=advance,
        unit_price=D("40"), unit_name="seat", default_quantity=D("10"), position=1,
    )  # fmt: skip
    if calls_counted:
        metric, _ = BillableMetric.objects.get_or_create(
            code="api_calls", defaults={"name": "API calls", "aggregation": "count"}
        )
    else:
        metric, _ = BillableMetric.objects.get_or_create(
            code="api_call_batches",
            defaults={"name": "API calls", "aggregation": "sum", "field_name": "calls"},
        )
    calls = Charge.objects.create(
        plan=plan, name="API calls", metric=metric, charge_model=Charge.Model.GRADUATED,
        billing_timing=arrears, unit_name="call", default_quantity=D("0"), position=2,
    )  # fmt: skip
    ChargeTier.objects.create(
        charge=calls, from_units=D(0), up_to=D(1_000_000), unit_price=D("0.002")
    )
    ChargeTier.objects.create(charge=calls, from_units=D(1_000_000), unit_price=D("0.0015"))
    return plan


def northwind_deal(*, plan: Plan | None = None, customer=None, **fields) -> Quote:
    """The quote above, as a draft (lines written directly, as the admin would save them)."""
    plan = plan or scale_plan()
    customer = customer or CustomerFactory(external_id="northwind", name="Northwind Traders")
    charges = {c.name: c for c in plan.charges.all()}
    quote = Quote.objects.create(
        customer=customer,
        plan=plan,
        title="Northwind 2027–2028",
        start_date=fields.pop("start_date", START),
        term_months=fields.pop("term_months", 24),
        valid_until=fields.pop("valid_until", dt.date(2026, 12, 31)),
        subscription_external_id="sub_northwind",
        **fields,
    )
    line = QuoteLine.objects.create
    line(quote=quote, kind="recurring", charge=charges["Platform fee"], description="Platform fee",
         quantity=D(1), position=0)  # fmt: skip
    seats = line(quote=quote, kind="recurring", charge=charges["Seats"], description="Seats",
                 quantity=D(100), discount_percent=D(10), position=1)  # fmt: skip
    QuoteLinePhase.objects.create(line=seats, start_month=1, end_month=12, quantity=D(100))
    QuoteLinePhase.objects.create(
        line=seats, start_month=13, end_month=24, quantity=D(150), unit_price=D("38")
    )
    calls = line(quote=quote, kind="usage", charge=charges["API calls"], description="API calls",
                 quantity=D(0), estimated_quantity=D(3_000_000), minimum_amount=D(3000),
                 position=2)  # fmt: skip
    QuoteLineTier.objects.create(line=calls, up_to=D(2_000_000), unit_price=D("0.0018"), position=0)
    QuoteLineTier.objects.create(line=calls, up_to=None, unit_price=D("0.0009"), position=1)
    line(quote=quote, kind="one_time", description="Implementation", quantity=D(1),
         unit_price=D("12000"), discount_percent=D(25), position=3)  # fmt: skip
    return quote
