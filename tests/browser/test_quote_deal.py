"""A sales rep builds a real hybrid deal through the admin pages, in a browser (issue 19): a
platform fee, seats with 10 % off ramped from 100 to 150 seats, usage with an estimate; the
totals follow the form before it is saved; submitted, the quote waits for finance's approval.

With QUOTE_SCREENSHOTS=dir, the quote page, the line's tiers & ramp page and finance's approval
queue are kept as PNGs (docs/quotes.md's, compressed, with QUOTE_SCREENSHOTS=docs/img)."""

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest

from core import clock
from quotes.models import ApprovalRule, Quote
from tests.browser.test_role_paths import check, log_in, staff, visit
from tests.factories import CustomerFactory, hybrid_plan

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shoot(page, name: str) -> None:
    """A full-page screenshot for the docs: at most 1000 px wide, a palette PNG."""
    folder = os.environ.get("QUOTE_SCREENSHOTS")
    if not folder:
        return
    from PIL import Image

    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    height = max(page.evaluate("document.documentElement.scrollHeight"), viewport["height"])
    page.set_viewport_size({"width": viewport["width"], "height": height})
    page.wait_for_timeout(300)  # the sticky save row settles at the end of the page
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(viewport)
    image = Image.open(path).convert("RGB")
    image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
    image = image.quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)


def figure(page, key: str):
    return page.locator(f'#quote-totals [data-figure="{key}"]')


def row(page, description: str) -> str:
    """The inline row prefix ("lines-1") of the line with this description."""
    for n in range(page.locator("input[name$='-description']").count()):
        field = page.locator("input[name$='-description']").nth(n)
        if field.input_value() == description:
            return field.get_attribute("name").rsplit("-", 1)[0]
    raise AssertionError(f"no line {description!r}")


def test_a_rep_builds_a_hybrid_deal_sees_the_totals_live_and_submits_it(page):
    # Given the hybrid plan (platform fee 500.00, seats 25.00, API calls 0.002), a customer,
    # a rep, and finance's rule: a line discount above 5 % needs approval
    plan = hybrid_plan()
    CustomerFactory(external_id="acme", name="Acme Rockets", billing_email="buyer@acme.example")
    ApprovalRule.objects.create(
        name="Line discount above 5%",
        kind=ApprovalRule.Kind.LINE_DISCOUNT_ABOVE,
        threshold=Decimal("5"),
    )
    staff("sam", "Sales")
    start = clock.today() + dt.timedelta(days=14)

    # When the rep adds a 24-month quote for Acme on the plan
    log_in(page, "/admin/login/", "sam")
    visit(page, "/admin/quotes/quote/add/")
    page.locator("#id_customer").locator("xpath=following-sibling::span[1]").click()
    page.locator(".select2-search__field").fill("Acme")
    page.locator(".select2-results__option", has_text="Acme Rockets").click()
    page.select_option("#id_plan", str(plan.pk))
    page.fill("#id_title", "Acme Rockets 2026")
    page.fill("#id_start_date", start.isoformat())
    page.fill("#id_term_months", "24")
    page.fill("#id_valid_until", (clock.today() + dt.timedelta(days=30)).isoformat())
    with page.expect_navigation():
        page.click("button[name=_continue]")
    check(page)
    quote = Quote.objects.get()
    assert quote.lines.count() == 3  # the plan's charges, at catalog prices
    assert figure(page, "mrr_first").inner_text() == "$625.00"  # 500 + 5 × 25

    # And types 100 seats at 10 % off and an estimate of 200,000 API calls a month
    seats, calls = row(page, "Seats"), row(page, "API calls")
    assert page.locator(f"[name={seats}-unit_price]").get_attribute("placeholder") == (
        "list $25.00"
    )
    page.fill(f"[name={seats}-quantity]", "100")
    page.fill(f"[name={seats}-discount_percent]", "10")
    page.fill(f"[name={calls}-estimated_quantity]", "200000")

    # Then the totals follow without a save: 500 + 100 × 22.50 = 2,750.00 a month; usage
    # 200,000 × 0.002 = 400.00 a month, 24 × 400 = 9,600.00 estimated
    page.wait_for_function(
        "document.querySelector('[data-figure=mrr_first]').innerText === '$2,750.00'"
    )
    assert figure(page, "estimated_usage").inner_text() == "$9,600.00"
    assert figure(page, "tcv").inner_text() == "$66,000.00"  # 24 × 2,750
    assert quote.lines.get(description="Seats").quantity == 5  # nothing saved yet
    with page.expect_navigation():
        page.click("button[name=_continue]")
    check(page)

    # When the rep ramps the seats on the line's page: 100 seats for months 1–12, 150 for 13–24
    with page.expect_navigation():
        page.locator("tr", has=page.locator(f"[name={seats}-quantity]")).get_by_role(
            "link", name="Tiers & ramp"
        ).click()
    check(page)
    for n, (first, last, quantity) in enumerate([(1, 12, 100), (13, 24, 150)]):
        page.get_by_text("Add another ramp phase").click()
        page.fill(f"[name=phases-{n}-start_month]", str(first))
        page.fill(f"[name=phases-{n}-end_month]", str(last))
        page.fill(f"[name=phases-{n}-quantity]", str(quantity))
    shoot(page, "quote-line-ramp")
    with page.expect_navigation():
        page.click("button[name=_save]")

    # Then back on the quote, the totals include the ramp: at full ramp 500 + 150 × 22.50
    check(page)
    assert f"/admin/quotes/quote/{quote.pk}/change/" in page.url
    assert figure(page, "mrr_first").inner_text() == "$2,750.00"
    assert figure(page, "mrr_full").inner_text() == "$3,875.00"
    assert figure(page, "arr").inner_text() == "$46,500.00"
    # over 24 months: 24 × 500 + 12 × 2,250 + 12 × 3,375 = 12,000 + 27,000 + 40,500
    assert figure(page, "tcv").inner_text() == "$79,500.00"
    shoot(page, "quote-page")

    # When the rep submits it for approval
    with page.expect_navigation():
        page.click("button[name=_workflow][value=submit]")

    # Then the quote is in review, with the reason, read-only
    check(page)
    reason = "Line discount above 5%: 'Seats' is discounted 10 %, above 5 %."
    quote.refresh_from_db()
    assert (quote.status, quote.approval_reasons) == (Quote.Status.IN_REVIEW, [reason])
    assert page.locator("ul.list-disc li", has_text=reason).count() == 1  # under the status
    assert page.locator(f"[name={seats}-quantity]").count() == 0

    # And finance finds it in the approval queue, with the reason and the count
    page.context.clear_cookies()
    staff("fiona", "Finance")
    log_in(page, "/admin/login/", "fiona")
    queue = page.get_by_role("link", name="Approval queue")
    assert "1" in queue.inner_text()
    with page.expect_navigation():
        queue.click()
    check(page)
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and reason in rows.first.inner_text()
    shoot(page, "quote-approval-queue")
