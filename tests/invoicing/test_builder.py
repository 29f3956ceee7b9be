"""invoicing.builder: builds a billing date's lines and credit draws as a value, writing nothing."""

from decimal import Decimal

from invoicing.builder import build_invoice_lines
from invoicing.models import InvoiceLine
from subscriptions.services import prepaid_credit_grant
from tests.invoicing.test_rounding import tokens, tokens_subscription

D = Decimal


def test_building_twice_gives_the_same_lines_and_changes_no_credit(db):
    sub = tokens_subscription(credit_units="1000")
    money = prepaid_credit_grant(subscription=sub, amount=D("4.00"))
    tokens(sub, 8505)
    credits = list(sub.prepaid_credits.order_by("granted_on", "id"))
    january = sub.billing_periods.get()

    first, second = (
        build_invoice_lines(subscription=sub, advance=None, arrears=january, credits=credits)
        for _ in range(2)
    )

    def lines(built):
        return [(line.kind, line.description, line.amount) for line in built.lines]

    assert (
        lines(first)
        == lines(second)
        == [
            ("usage", "Tokens", D("7.51")),
            ("true_up", "Tokens: minimum commitment true-up", D("1.49")),
            ("credit", "Prepaid credit applied (0 USD left)", D("-4.00")),
        ]
    )
    assert [(d.credit.pk, d.amount) for d in first.draws] == [
        (credits[0].pk, D("1000")),
        (money.pk, D("4.00")),
    ]
    assert [c.remaining for c in credits] == [D("1000"), D("4.00")]  # objects untouched
    assert InvoiceLine.objects.count() == 0
