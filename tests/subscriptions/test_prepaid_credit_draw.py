"""prepaid_credit_draw: the one way a prepaid balance goes down; never below zero."""

from decimal import Decimal

import pytest

from core.errors import ValidationError
from subscriptions.services import prepaid_credit_draw, prepaid_credit_grant, subscription_create
from tests.factories import CustomerFactory, day, hybrid_plan

D = Decimal


@pytest.fixture
def credit(db):
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=hybrid_plan(),
        external_id="s_credit",
        start_date=day("2026-01-01"),
        term_months=1,
    )
    return prepaid_credit_grant(subscription=sub, amount=D("50.00"))


def test_a_draw_takes_the_amount_off_what_is_left(credit):
    drawn = prepaid_credit_draw(credit=credit, amount=D("45.00"))
    assert drawn.remaining == D("5.00")
    credit.refresh_from_db()
    assert (credit.granted, credit.remaining) == (D("50.00"), D("5.00"))
    assert credit.history.count() == 2  # granted, then drawn: the change is on record


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (D("50.01"), "has 50.000000 left: it cannot pay 50.01."),
        (D("0"), "must be above zero, not 0."),
        (D("-1"), "must be above zero, not -1."),
    ],
)
def test_a_draw_never_takes_a_balance_below_zero(credit, amount, message):
    with pytest.raises(ValidationError, match=message):
        prepaid_credit_draw(credit=credit, amount=amount)
    credit.refresh_from_db()
    assert credit.remaining == D("50.00")
