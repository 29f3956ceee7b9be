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
