"""The upcoming invoice on the subscription's admin page (issue 18).

subscriptions/admin.py may not import invoicing (DESIGN's import order), so the subscription's
change form shows the preview through this tag, loaded by the project template
templates/admin/subscriptions/subscription/change_form.html:

    {% load invoicing_preview %}{% upcoming_invoice original %}

Figures are formatted here, by core.formatting, as everywhere in the back office.
"""

from django import template

from core.formatting import format_money, format_price, format_quantity
from invoicing.models import InvoiceLine
from invoicing.selectors import upcoming_invoice as upcoming_invoice_of

register = template.Library()

# Lines whose quantity is a count of units (fees, usage); credits and adjustments are amounts.
COUNTED = {InvoiceLine.Kind.FEE, InvoiceLine.Kind.USAGE}


@register.inclusion_tag("invoicing/_upcoming_invoice.html")
def upcoming_invoice(subscription) -> dict:
    """The invoice the subscription would get if its period in progress closed now."""
    if subscription is None or subscription.pk is None:
        return {"shown": False}
    upcoming = upcoming_invoice_of(subscription=subscription)
    if upcoming is None:
        return {"shown": True, "upcoming": None}
    currency = upcoming.currency
    return {
        "shown": True,
        "upcoming": upcoming,
        "lines": [
            {
                "description": line.description,
                "period_start": line.period_start,
                "last_day": line.last_day,  # the period as people read it: last day included
                "quantity": format_quantity(line.quantity) if line.kind in COUNTED else "",
                "unit_price": format_price(line.unit_price, currency),
                "amount": format_money(line.amount, currency),
            }
            for line in upcoming.lines
        ],
        "subtotal": format_money(upcoming.subtotal, currency),
        "tax_rate": format_quantity(upcoming.tax_rate),
        "tax_amount": format_money(upcoming.tax_amount, currency),
        "total": format_money(upcoming.total, currency),
    }
