"""Price terms read as people read them: one line per model, tiers as a table, never JSON."""

import pytest

from catalog.pricing_display import pricing_summary, pricing_table_html

GRADUATED_TOKENS = {
    "model": "graduated",
    "tiers": [
        {
            "from": "0",
            "up_to": "10000000.000000",
            "unit_price": "0.000004000000",
            "flat_fee": "0E-12",
        },
        {"from": "10000000", "up_to": None, "unit_price": "0.000003000000", "flat_fee": "0E-12"},
    ],
}


@pytest.mark.parametrize(
    ("pricing", "currency", "summary"),
    [
        ({"model": "flat", "unit_price": "500.000000000000"}, "USD", "Flat · $500.00 per period"),
        (
            {"model": "standard", "unit_price": "0.002000000000", "free_units": "1000"},
            "USD",
            "Standard · $0.002 per unit · first 1,000 units free",
        ),
        (
            GRADUATED_TOKENS,
            "USD",
            "Graduated · 0 – 10,000,000: $0.000004 · above 10,000,000: $0.000003",
        ),
        (
            {
                "model": "volume",
                "tiers": [
                    {"up_to": "100", "unit_price": "1200", "flat_fee": "5000"},
                    {"up_to": None, "unit_price": "900", "flat_fee": "0"},
                ],
                "min_amount": "10000",
            },
            "JPY",
            "Volume · 0 – 100: ¥1,200 + ¥5,000 flat · above 100: ¥900 · minimum ¥10,000 per period",
        ),
        (
            {"model": "package", "package_size": "1000.000000", "package_price": "10.5"},
            "EUR",
            "Package · €10.50 per 1,000 units",
        ),
        (
            {
                "model": "percentage",
                "rate": "2.9000",
                "fixed_fee": "0.30",
                "free_events": "0",
                "max_per_event": "5",
            },
            "USD",
            "Percentage · 2.9% + $0.30 per event · max $5.00 per event",
        ),
    ],
)
def test_pricing_summary_reads_each_model(pricing, currency, summary):
    assert pricing_summary(pricing, currency) == summary


def test_a_tiered_price_is_a_table_of_its_tiers():
    html = pricing_table_html(GRADUATED_TOKENS, "USD")
    units = '<td style="padding:0;white-space:nowrap">{}</td>'
    cell = '<td class="text-right" style="padding:0 0 0 .75rem;white-space:nowrap">{}</td>'
    rows = [
        "<tr>" + units.format("0 – 10,000,000") + cell.format("$0.000004") + "</tr>",
        "<tr>" + units.format("above 10,000,000") + cell.format("$0.000003") + "</tr>",
    ]
    assert html.startswith('<div class="pricing"><strong>Graduated</strong><table')
    assert "".join(rows) in html
    assert "0E-12" not in html and "{" not in html
    assert "Flat fee" not in html  # no tier has one: no column for it


def test_a_tier_flat_fee_gets_its_column():
    pricing = {
        "model": "graduated",
        "tiers": [
            {"up_to": "100", "unit_price": "1", "flat_fee": "10"},
            {"up_to": None, "unit_price": "0.5", "flat_fee": "0"},
        ],
    }
    html = pricing_table_html(pricing, "USD")
    assert ">Flat fee</th>" in html
    assert ">$10.00</td></tr>" in html and ">—</td></tr>" in html


def test_an_untiered_price_is_its_summary():
    assert pricing_table_html({"model": "flat", "unit_price": "500"}, "USD") == (
        '<span class="pricing">Flat · $500.00 per period</span>'
    )


# --- rating steps as people read them -----------------------------------------------------------


def _explained(pricing: dict, quantity: str, currency: str = "USD") -> list[str]:
    from decimal import Decimal

    from catalog.pricing_display import explanation_lines
    from catalog.rating import rate

    return explanation_lines(rate(pricing, Decimal(quantity)).explanation(), currency)


@pytest.mark.parametrize(
    ("pricing", "quantity", "lines"),
    [
        ({"model": "flat", "unit_price": "499"}, "1", ["flat fee = $499.00"]),
        ({"model": "standard", "unit_price": "25"}, "12", ["12 × $25.00 = $300.00"]),
        (
            {"model": "standard", "unit_price": "0.000002", "min_amount": "200"},
            "1500",
            ["1,500 × $0.000002 = $0.003", "minimum commitment $200.00: true-up = $199.997"],
        ),
        (
            {
                "model": "graduated",
                "tiers": [
                    {"up_to": "10", "unit_price": "1", "flat_fee": "5"},
                    {"up_to": None, "unit_price": "0.5"},
                ],
                "max_amount": "12",
            },
            "12",
            [
                "tier 1–10: 10 × $1.00 + $5.00 flat = $15.00",
                "tier 11+: 2 × $0.50 = $1.00",
                "capped at $12.00 = -$4.00",
            ],
        ),
        (
            {"model": "package", "package_size": "100", "package_price": "3"},
            "250",
            ["250 units in packages of 100: 3 × $3.00 = $9.00"],
        ),
        ({"model": "standard", "unit_price": "40"}, "2", ["2 × ¥40 = ¥80"]),
    ],
)
def test_rating_steps_read_with_their_currency_and_exact_subtotals(pricing, quantity, lines):
    currency = "JPY" if lines[0].count("¥") else "USD"
    assert _explained(pricing, quantity, currency) == lines


def test_a_percentage_step_reads_its_base_and_fees_in_the_currency():
    from decimal import Decimal

    from catalog.pricing_display import explanation_lines
    from catalog.rating import rate_events

    pricing = {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30", "min_per_event": "0.5"}
    rated = rate_events(pricing, [Decimal("1000"), Decimal("1")])

    assert explanation_lines(rated.explanation(), "USD") == [
        "2 events: 2.9 % of $1,001.00 + $0.30 per event (1 raised to the minimum $0.50) = $29.80"
    ]


def test_a_step_of_less_than_a_cent_is_not_rounded_away():
    assert _explained({"model": "standard", "unit_price": "0.000002"}, "2000") == [
        "2,000 × $0.000002 = $0.004"
    ]
