"""The SSP price book: finance gives each charge of a plan a standalone selling price over dates
(an amount, or a percent of list); revenue allocation reads it through catalog.selectors.ssp_for."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from catalog.models import StandaloneSellingPrice
from catalog.selectors import book_line, ssp_book, ssp_for, ssp_line, ssp_value
from tests.factories import ChargeFactory, UserFactory, hybrid_plan

D = Decimal


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def ssp(plan, key="seats", **fields) -> StandaloneSellingPrice:
    """A validated, saved line (full_clean as the admin runs it)."""
    line = StandaloneSellingPrice(plan=plan, charge_key=key, **fields)
    line.full_clean()
    line.save()
    return line


def errors_of(plan, key="seats", **fields) -> dict[str, list[str]]:
    line = StandaloneSellingPrice(plan=plan, charge_key=key, **fields)
    with pytest.raises(ValidationError) as caught:
        line.full_clean()
    return caught.value.message_dict


@pytest.fixture
def plan(db):
    return hybrid_plan()  # charges platform-fee 500.00, seats 25.00, api-calls 0.002 (USD)


def seats(plan):
    return plan.charges.get(key="seats", currency="USD")


# ---------------------------------------------------------------------------------------------
# Validation


def test_a_line_takes_the_plans_currency_and_is_saved(plan):
    line = ssp(plan, effective_from=day("2026-01-01"), amount=D("30.00"))
    assert line.currency == "USD"
    assert str(line) == "seats from 2026-01-01: $30.00"


def test_an_ssp_is_an_amount_or_a_percent_not_both_nor_neither(plan):
    both = errors_of(
        plan, effective_from=day("2026-01-01"), amount=D("30"), percent_of_list=D("80")
    )
    assert both["amount"] == ["Give the SSP as an amount or as a percent of list, not both."]
    neither = errors_of(plan, effective_from=day("2026-01-01"))
    assert neither["amount"] == ["Give the SSP: an amount, or a percent of the list price."]
    assert StandaloneSellingPrice.objects.count() == 0


def test_the_database_refuses_both_or_neither_too(plan):
    with pytest.raises(IntegrityError), transaction.atomic():
        StandaloneSellingPrice.objects.create(
            plan=plan, charge_key="seats", effective_from=day("2026-01-01")
        )
    assert StandaloneSellingPrice.objects.count() == 0


def test_the_end_comes_after_the_start(plan):
    errors = errors_of(
        plan, effective_from=day("2026-03-01"), effective_to=day("2026-03-01"), amount=D("1")
    )
    assert errors["effective_to"] == [
        "'Effective to' (2026-03-01) must be after 'effective from' (2026-03-01): it is the "
        "first day the price no longer applies."
    ]


def test_the_charge_key_must_be_one_of_the_plans(plan):
    errors = errors_of(plan, key="support", effective_from=day("2026-01-01"), amount=D("1"))
    assert errors["charge_key"] == [
        f"Plan '{plan.code}' has no charge with key 'support' (its keys: api-calls, "
        "platform-fee, seats)."
    ]


def test_the_currency_must_be_one_the_plan_sells_in(plan):
    errors = errors_of(plan, currency="EUR", effective_from=day("2026-01-01"), amount=D("1"))
    assert errors["currency"] == [f"Plan '{plan.code}' is sold in USD: use one of those."]


def test_a_negative_amount_or_percent_is_refused(plan):
    assert "amount" in errors_of(plan, effective_from=day("2026-01-01"), amount=D("-1"))
    assert "percent_of_list" in errors_of(
        plan, effective_from=day("2026-01-01"), percent_of_list=D("-5")
    )


def test_a_line_inside_an_open_ended_one_is_refused_on_the_new_line(plan):
    # Given seats at 30.00 from Jan 1, 2026 with no end
    ssp(plan, effective_from=day("2026-01-01"), amount=D("30.00"))
    # When finance adds 32.00 from Jul 1 without ending the first line
    errors = errors_of(plan, effective_from=day("2026-07-01"), amount=D("32.00"))
    # Then the new line is refused, saying to end the first one
    assert errors["effective_from"] == [
        f"The 'seats' charge of plan '{plan.code}' already has a standalone selling price in USD "
        "from 2026-01-01 with no end: first give that line an 'effective to' of 2026-07-01 (or "
        "earlier), then add this one."
    ]
    assert StandaloneSellingPrice.objects.count() == 1


def test_a_line_starting_inside_a_closed_one_is_told_where_the_free_dates_start(plan):
    ssp(plan, effective_from=day("2026-01-01"), effective_to=day("2026-07-01"), amount=D("30"))
    errors = errors_of(plan, effective_from=day("2026-06-15"), amount=D("32.00"))
    assert errors["effective_from"] == [
        f"The 'seats' charge of plan '{plan.code}' already has a standalone selling price in USD "
        "from 2026-01-01 to 2026-07-01: start this line on or after 2026-07-01, or change that "
        "line first."
    ]


def test_a_line_running_into_a_later_one_is_told_to_end_before_it(plan):
    ssp(plan, effective_from=day("2026-07-01"), amount=D("32.00"))
    errors = errors_of(plan, effective_from=day("2026-01-01"), amount=D("30.00"))
    assert errors["effective_to"] == [
        f"The 'seats' charge of plan '{plan.code}' already has a standalone selling price in USD "
        "from 2026-07-01 with no end: end this line on or before 2026-07-01 ('effective to' is "
        "the first day it no longer applies)."
    ]


def test_consecutive_lines_and_other_charges_do_not_overlap(plan):
    ssp(plan, effective_from=day("2026-01-01"), effective_to=day("2026-07-01"), amount=D("30"))
    ssp(plan, effective_from=day("2026-07-01"), amount=D("32"))  # starts on the first free day
    ssp(plan, key="platform-fee", effective_from=day("2026-01-01"), percent_of_list=D("90"))
    assert StandaloneSellingPrice.objects.count() == 3


def test_editing_a_line_does_not_overlap_itself(plan):
    line = ssp(plan, effective_from=day("2026-01-01"), amount=D("30"))
    line.amount = D("31")
    line.full_clean()


# ---------------------------------------------------------------------------------------------
# ssp_for


def test_ssp_for_is_the_amount_in_force_on_the_day(plan):
    ssp(plan, effective_from=day("2026-01-01"), effective_to=day("2026-07-01"), amount=D("30"))
    ssp(plan, effective_from=day("2026-07-01"), amount=D("32.50"))
    charge = seats(plan)

    assert ssp_for(charge, day("2026-01-01"), D("25")) == D("30")
    assert ssp_for(charge, day("2026-06-30"), D("25")) == D("30")
    assert ssp_for(charge, day("2026-07-01"), D("25")) == D("32.50")
    assert ssp_for(charge, day("2030-01-01"), D("25")) == D("32.50")


def test_ssp_for_a_percent_of_list_is_the_list_price_times_the_percent(plan):
    ssp(plan, key="platform-fee", effective_from=day("2026-01-01"), percent_of_list=D("80"))
    platform = plan.charges.get(key="platform-fee")
    # 80% of the 500.00 list; of a discounted list the contract used (450.00): 360.00
    assert ssp_for(platform, day("2026-03-01"), D("500.00")) == D("400.00")
    assert ssp_for(platform, day("2026-03-01"), D("450.00")) == D("360.00")
    # not rounded: it is a weight (80% of 0.002 per call)
    assert ssp_value(ssp_line(platform, on=day("2026-03-01")), D("0.002")) == D("0.0016")


def test_without_a_line_in_force_the_ssp_is_the_list_price(plan):
    ssp(plan, effective_from=day("2026-03-01"), effective_to=day("2026-04-01"), amount=D("30"))
    charge = seats(plan)
    assert ssp_for(charge, day("2026-02-28"), D("25.00")) == D("25.00")  # before the line
    assert ssp_for(charge, day("2026-04-01"), D("25.00")) == D("25.00")  # after its end
    assert ssp_for(None, day("2026-03-15"), D("1500.00")) == D("1500.00")  # a typed one-time fee


def test_a_new_version_of_the_charge_keeps_its_ssp(plan):
    # Given seats re-priced from Jul 1 (a new version: same key)
    ssp(plan, effective_from=day("2026-01-01"), amount=D("30"))
    v2 = ChargeFactory(
        plan=plan, name="Seats", key="seats", unit_price=D("27"), effective_from=day("2026-07-01")
    )
    assert ssp_for(v2, day("2026-08-01"), D("27")) == D("30")


def test_each_currency_has_its_own_line(db):
    plan = hybrid_plan()
    plan.additional_currencies = "EUR"
    plan.save()
    eur_seats = ChargeFactory(plan=plan, name="Seats", key="seats", currency="EUR")
    ssp(plan, effective_from=day("2026-01-01"), amount=D("30"))  # USD
    ssp(plan, currency="EUR", effective_from=day("2026-01-01"), amount=D("28"))
    assert ssp_for(seats(plan), day("2026-02-01"), D("25")) == D("30")
    assert ssp_for(eur_seats, day("2026-02-01"), D("23")) == D("28")


def test_the_preloaded_book_answers_like_ssp_for_in_one_query(plan, django_assert_num_queries):
    ssp(plan, effective_from=day("2026-01-01"), effective_to=day("2026-07-01"), amount=D("30"))
    ssp(plan, effective_from=day("2026-07-01"), amount=D("32.50"))
    ssp(plan, key="platform-fee", effective_from=day("2026-01-01"), percent_of_list=D("80"))
    charges = list(plan.charges.all())
    with django_assert_num_queries(1):
        book = ssp_book([plan.pk])
    days = [day("2025-12-31"), day("2026-01-01"), day("2026-06-30"), day("2026-07-01")]
    with django_assert_num_queries(0):
        from_book = [ssp_value(book_line(book, c, d), c.unit_price) for c in charges for d in days]
    assert from_book == [ssp_for(c, d, c.unit_price) for c in charges for d in days]


# ---------------------------------------------------------------------------------------------
# Admin: the book is a tab of the plan's page; the lines edited together are checked together


@pytest.fixture
def finance(db, client):
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


def _plan_form(plan, lines, initial=()):
    data = {
        "code": plan.code,
        "name": plan.name,
        "currency": "USD",
        "additional_currencies": "",
        "billing_interval_months": "1",
        "trial_days": "0",
        "active": "on",
        "renewal_uplift_percent": "",
        "renewal_uplift_on": "net",
        "charges-TOTAL_FORMS": "0",
        "charges-INITIAL_FORMS": "0",
        "charges-MIN_NUM_FORMS": "0",
        "charges-MAX_NUM_FORMS": "1000",
        "alert_defaults-TOTAL_FORMS": "0",
        "alert_defaults-INITIAL_FORMS": "0",
        "alert_defaults-MIN_NUM_FORMS": "0",
        "alert_defaults-MAX_NUM_FORMS": "1000",
        "ssp_lines-TOTAL_FORMS": str(len(initial) + len(lines)),
        "ssp_lines-INITIAL_FORMS": str(len(initial)),
        "ssp_lines-MIN_NUM_FORMS": "0",
        "ssp_lines-MAX_NUM_FORMS": "1000",
    }
    for i, (pk, key, start, end, amount, percent) in enumerate([*initial, *lines]):
        data |= {
            f"ssp_lines-{i}-id": pk or "",
            f"ssp_lines-{i}-plan": plan.pk,
            f"ssp_lines-{i}-charge_key": key,
            f"ssp_lines-{i}-currency": "",
            f"ssp_lines-{i}-effective_from": start,
            f"ssp_lines-{i}-effective_to": end,
            f"ssp_lines-{i}-amount": amount,
            f"ssp_lines-{i}-percent_of_list": percent,
        }
    return data


def test_finance_adds_ssp_lines_on_the_plans_page(finance, plan):
    response = finance.post(
        f"/admin/catalog/plan/{plan.pk}/change/",
        _plan_form(
            plan,
            [
                (None, "seats", "2026-01-01", "2026-07-01", "30.00", ""),
                (None, "seats", "2026-07-01", "", "32.50", ""),
                (None, "platform-fee", "2026-01-01", "", "", "80"),
            ],
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(
        StandaloneSellingPrice.objects.order_by("charge_key", "effective_from").values_list(
            "charge_key", "currency", "effective_to", "amount", "percent_of_list"
        )
    ) == [
        ("platform-fee", "USD", None, None, D("80")),
        ("seats", "USD", day("2026-07-01"), D("30"), None),
        ("seats", "USD", None, D("32.5"), None),
    ]
    page = finance.get(f"/admin/catalog/plan/{plan.pk}/change/").content.decode()
    assert "Standalone selling prices" in page


def test_two_new_lines_that_overlap_are_refused_on_the_later_one(finance, plan):
    response = finance.post(
        f"/admin/catalog/plan/{plan.pk}/change/",
        _plan_form(
            plan,
            [
                (None, "seats", "2026-07-01", "", "32.50", ""),
                (None, "seats", "2026-01-01", "", "30.00", ""),
            ],
        ),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "already has a standalone selling price in USD from 2026-01-01 with no end" in html
    assert "give that line an &#x27;effective to&#x27; of 2026-07-01" in html
    assert StandaloneSellingPrice.objects.count() == 0


def test_ending_a_line_and_adding_the_next_in_one_save_is_accepted(finance, plan):
    # Given seats at 30.00 from Jan 1 with no end
    first = ssp(plan, effective_from=day("2026-01-01"), amount=D("30.00"))
    # When finance ends it on Jul 1 and adds 32.50 from Jul 1 in the same save
    response = finance.post(
        f"/admin/catalog/plan/{plan.pk}/change/",
        _plan_form(
            plan,
            [(None, "seats", "2026-07-01", "", "32.50", "")],
            initial=[(first.pk, "seats", "2026-01-01", "2026-07-01", "30.00", "")],
        ),
    )
    # Then both are saved (the saved open end is not held against the new line)
    assert response.status_code == 302, response.content.decode()[:3000]
    first.refresh_from_db()
    assert first.effective_to == day("2026-07-01")
    assert ssp_for(seats(plan), day("2026-07-01"), D("25")) == D("32.50")


def test_sales_cannot_see_the_price_book(client, plan):
    user = UserFactory(username="rep", is_staff=True)
    user.groups.add(Group.objects.get(name="Sales"))
    client.force_login(user)
    ssp(plan, effective_from=day("2026-01-01"), amount=D("30.00"))
    page = client.get(f"/admin/catalog/plan/{plan.pk}/change/").content.decode()
    assert page.count("Standalone selling prices") == 0
