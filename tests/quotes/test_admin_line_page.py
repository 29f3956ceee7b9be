"""A line's own page ("Tiers & ramp"): negotiated tiers and ramp phases, checked as a whole when
saved, with the message on the formset and nothing saved when refused."""

from decimal import Decimal

import pytest

from quotes.models import ApprovalRule, Quote, QuoteLinePhase, QuoteLineTier
from quotes.services import quote_submit
from tests.quotes.test_admin_totals import worked_example

pytestmark = pytest.mark.usefixtures("admin_clock")


def formset(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data |= {f"{prefix}-{i}-{name}": value for name, value in row.items()}
    return data


def saved_phases(line):
    return [(p.id, p.start_month, p.end_month, p.quantity) for p in line.phases.all()]


def page_data(line, *, tiers=(), phases=()):
    kept_tiers = [
        {"id": t.pk, "line": line.pk, "up_to": t.up_to or "", "unit_price": t.unit_price,
         "flat_fee": t.flat_fee}
        for t in line.tiers.all()
    ]  # fmt: skip
    kept_phases = [
        {"id": p.pk, "line": line.pk, "start_month": p.start_month, "end_month": p.end_month,
         "quantity": p.quantity, "unit_price": "", "discount_percent": ""}
        for p in line.phases.all()
    ]  # fmt: skip
    return formset("tiers", kept_tiers + list(tiers), len(kept_tiers)) | formset(
        "phases", kept_phases + list(phases), len(kept_phases)
    )


def test_the_line_page_shows_its_tiers_and_phases_and_links_back(sales_client):
    quote = worked_example()
    seats = quote.lines.get(description="Seats")

    html = sales_client.get(f"/admin/quotes/quoteline/{seats.pk}/change/").content.decode()

    assert f'href="/admin/quotes/quote/{quote.pk}/change/"' in html
    assert "back to the quote" in html
    assert 'name="phases-1-start_month"' in html and 'value="13"' in html
    assert "Negotiated tiers" in html


def test_a_gap_in_the_ramp_is_refused_and_nothing_is_saved(sales_client):
    quote = worked_example()
    seats = quote.lines.get(description="Seats")
    before = saved_phases(seats)
    data = page_data(seats)
    data["phases-1-start_month"] = "14"  # months 13 in no phase

    response = sales_client.post(f"/admin/quotes/quoteline/{seats.pk}/change/", data)

    assert response.status_code == 200
    phases = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "phases"
    )
    assert phases.formset.non_form_errors() == ["Months 13–13 are in no phase."]
    assert "Months 13–13 are in no phase." in response.content.decode()
    assert saved_phases(seats) == before


def test_phases_past_the_term_are_refused(sales_client):
    quote = worked_example()
    seats = quote.lines.get(description="Seats")
    data = page_data(seats, phases=[{"start_month": "25", "end_month": "36", "quantity": "200"}])

    response = sales_client.post(f"/admin/quotes/quoteline/{seats.pk}/change/", data)

    phases = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "phases"
    )
    assert phases.formset.non_form_errors() == [
        "The phases run to month 36, past the 24-month term."
    ]
    assert QuoteLinePhase.objects.filter(line=seats).count() == 2


def test_tiers_out_of_order_are_refused_with_the_catalogs_message(sales_client):
    quote = worked_example()
    tokens = quote.lines.get(description="Tokens")
    before = list(QuoteLineTier.objects.values_list("id", "up_to", "unit_price"))
    data = page_data(tokens, tiers=[{"up_to": "", "unit_price": "0.001", "flat_fee": "0"}])

    response = sales_client.post(f"/admin/quotes/quoteline/{tokens.pk}/change/", data)

    assert response.status_code == 200
    tiers = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "tiers"
    )
    assert tiers.formset.non_form_errors()  # two open-ended tiers
    assert list(QuoteLineTier.objects.values_list("id", "up_to", "unit_price")) == before


def test_tiers_on_a_fixed_fee_are_refused(sales_client):
    quote = worked_example()
    fee = quote.lines.get(description="Platform fee")
    data = page_data(fee, tiers=[{"up_to": "", "unit_price": "1", "flat_fee": "0"}])

    response = sales_client.post(f"/admin/quotes/quoteline/{fee.pk}/change/", data)

    tiers = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "tiers"
    )
    assert tiers.formset.non_form_errors() == [
        "Only a line on a graduated or volume charge has tiers."
    ]
    assert not fee.tiers.exists()


def test_a_valid_ramp_is_saved_and_back_to_the_quote(sales_client):
    quote = worked_example()
    seats = quote.lines.get(description="Seats")
    data = page_data(seats)
    data |= {"phases-1-start_month": "13", "phases-1-quantity": "175"}

    response = sales_client.post(f"/admin/quotes/quoteline/{seats.pk}/change/", data)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/quotes/quote/{quote.pk}/change/"
    assert [p[3] for p in saved_phases(seats)] == [100, 175]


def test_a_line_of_a_quote_in_review_is_read_only_and_an_approved_ones_edit_goes_to_review(
    sales_client,
):
    ApprovalRule.objects.create(
        name="Big deals", kind=ApprovalRule.Kind.ACV_ABOVE, threshold=60000, currency="USD"
    )
    quote = quote_submit(quote=worked_example())  # ACV 55,500.00: approved
    assert quote.status == Quote.Status.APPROVED
    seats = quote.lines.get(description="Seats")
    data = page_data(seats) | {"phases-1-quantity": "250"}

    sales_client.post(f"/admin/quotes/quoteline/{seats.pk}/change/", data)

    quote.refresh_from_db()
    assert quote.status == Quote.Status.IN_REVIEW
    assert quote.approval_reasons[0].startswith("Big deals: the annual contract value")
    page = sales_client.get(f"/admin/quotes/quoteline/{seats.pk}/change/").content.decode()
    assert 'name="phases-0-quantity"' not in page and 'name="_save"' not in page


def test_a_quote_in_review_shows_its_numbers_as_people_read_them(sales_client):
    """Read-only lines, tiers and phases: 100 seats, $0.0018, 10 %, not 100.000000 (the
    column's every decimal place)."""
    from tests.quotes.deal import northwind_deal
    from tests.test_pages_show_money import problems

    ApprovalRule.objects.create(name="Any discount", kind="line_discount_above", threshold=0)
    quote = quote_submit(quote=northwind_deal())
    assert quote.status == Quote.Status.IN_REVIEW
    seats, calls = quote.lines.get(description="Seats"), quote.lines.get(description="API calls")
    pages = {
        url: sales_client.get(url).content.decode()
        for url in (
            f"/admin/quotes/quote/{quote.pk}/change/",
            f"/admin/quotes/quoteline/{seats.pk}/change/",
            f"/admin/quotes/quoteline/{calls.pk}/change/",
        )
    }
    assert [p for url, html in pages.items() for p in problems(url, html)] == []
    quote_page, seats_page, calls_page = pages.values()
    assert "3,000,000" in quote_page and "$3,000.00" in quote_page  # estimate, minimum / month
    assert ">100<" in seats_page.replace(" ", "") and "$38.00" in seats_page
    assert "2,000,000" in calls_page and "$0.0009" in calls_page


def test_a_ramped_lines_quantity_is_its_first_phases(sales_client):
    quote = worked_example()
    seats = quote.lines.get(description="Seats")
    seats.phases.all().delete()
    seats.quantity = Decimal("7")
    seats.save()
    response = sales_client.post(
        f"/admin/quotes/quoteline/{seats.pk}/change/",
        page_data(
            seats,
            phases=[
                {"start_month": "1", "end_month": "12", "quantity": "120"},
                {"start_month": "13", "end_month": "24", "quantity": "150"},
            ],
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    seats.refresh_from_db()
    assert seats.quantity == Decimal("120")
