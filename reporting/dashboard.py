"""The admin home (unfold's DASHBOARD_CALLBACK): the figures of reporting.selectors, per role.

Finance (the Finance group, or a superuser) sees recurring revenue, billings, usage, receivables
and the forecast; Sales (the Sales group) sees quotes, signed ARR and renewals; anyone else sees
the plain app list. Figures are shown in settings.REPORTING_CURRENCY; amounts in other
currencies are listed apart, never converted. Every figure links to the admin list behind it.
"""

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from core import clock
from core.formatting import format_money, format_quantity
from core.money import exact_sum
from core.periods import month_start
from invoicing.models import Invoice
from quotes.models import Quote
from reporting import selectors
from subscriptions.models import Subscription

ZERO = Decimal(0)


def is_finance(user) -> bool:
    return user.is_active and (user.is_superuser or user.groups.filter(name="Finance").exists())


def is_sales(user) -> bool:
    return user.is_active and user.groups.filter(name="Sales").exists()


def main_currency() -> str:
    return getattr(settings, "REPORTING_CURRENCY", "USD")


def changelist(model, **params) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def change(model, pk: int) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])


def money(amounts: selectors.PerCurrency, currency: str) -> str:
    return format_money(amounts.get(currency, ZERO), currency)


def others(amounts: selectors.PerCurrency, currency: str) -> str:
    """'also €1,200.00 (not converted)' for the other currencies' amounts; '' without any."""
    rest = [format_money(v, c) for c, v in sorted(amounts.items()) if c != currency and v]
    return f"also {', '.join(rest)} (not converted)" if rest else ""


def percent(ratio: Decimal | None) -> str:
    if ratio is None:
        return "—"
    return f"{(ratio * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def change_text(now: Decimal, before: Decimal) -> str:
    if not before:
        return ""
    delta = (now - before) / before * 100
    sign = "+" if delta >= 0 else "−"
    return f"({sign}{abs(delta).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%)"


def _chart(labels: list[str], datasets: list[dict]) -> str:
    return json.dumps({"labels": labels, "datasets": datasets})


# Axis numbers read like the page's numbers: 40,000,000, not 40000000. Options must be JSON (no
# tick callback); Chart.js formats ticks with Intl.NumberFormat, given a locale and `ticks.format`.
CHART_LOCALE = getattr(settings, "MONEY_LOCALE", "en_US").replace("_", "-")
NUMBER_TICKS = {"format": {"maximumFractionDigits": 2}, "color": "#9ca3af"}
# unfold's defaults (replaced whole by any options) for a daily line: no legend, six dates.
USAGE_LINE = json.dumps(
    {
        "locale": CHART_LOCALE,
        "animation": False,
        "maintainAspectRatio": False,
        "datasets": {"line": {"borderWidth": 2, "pointStyle": False}},
        "plugins": {"legend": {"display": False}},
        "scales": {
            "x": {
                "border": {"width": 0},
                "grid": {"display": False},
                "ticks": {"maxTicksLimit": 4, "maxRotation": 0, "color": "#9ca3af"},
            },
            "y": {"beginAtZero": True, "border": {"width": 0}, "ticks": NUMBER_TICKS},
        },
    }
)
BAR = {"maxBarThickness": 56, "barPercentage": 0.7, "categoryPercentage": 0.8, "borderRadius": 4}
# unfold's defaults do not stack bars; options given replace them whole.
STACKED = json.dumps(
    {
        "locale": CHART_LOCALE,
        "plugins": {
            "legend": {
                "display": True,
                "align": "end",
                "labels": {"boxWidth": 8, "boxHeight": 8, "usePointStyle": True},
            }
        },
        "scales": {
            "x": {"stacked": True, "grid": {"display": False}},
            "y": {"stacked": True, "beginAtZero": True, "ticks": NUMBER_TICKS},
        },
    }
)
COLORS = ["var(--color-primary-600)", "var(--color-primary-300)", "#f59e0b", "#10b981", "#6366f1"]


def dso_card(as_of: dt.date, currency: str) -> dict:
    """DSO over the last 90 days (as_of included), by the countback method (receivables.aging)."""
    from receivables.aging import DsoMethod, dso  # reporting may import receivables

    figure = dso(start=as_of - dt.timedelta(days=89), end=as_of, method=DsoMethod.COUNTBACK)
    days = figure.days.get(currency)
    open_amount = format_money(figure.receivables.get(currency, ZERO), currency)
    return {
        "title": "DSO (last 90 days)",
        "value": "—" if days is None else f"{days} days",
        "note": f"countback method, on {open_amount} open",
        "others": "",
        "href": reverse("receivables-aging"),
    }


def finance_context(as_of: dt.date, currency: str) -> dict:
    revenue = selectors.recurring_revenue(as_of)
    movements = selectors.mrr_movements(as_of)
    retention = selectors.net_retention(as_of)
    bills = selectors.billings(as_of)
    usage = selectors.usage_revenue(as_of)
    open_items = selectors.receivables(as_of)
    outlook = selectors.forecast(as_of)
    month = movements.month_start
    active = changelist(Subscription, status=Subscription.Status.ACTIVE)
    issued = f"{Invoice.Status.FINALIZED},{Invoice.Status.PAID}"
    kpis = [
        {
            "title": "MRR",
            "value": money(revenue.mrr, currency),
            "note": f"ARR {money(revenue.arr, currency)} · {revenue.subscriptions} subscriptions",
            "others": others(revenue.mrr, currency),
            "href": active,
        },
        {
            "title": "Net revenue retention (12 months)",
            "value": percent(retention.ratio.get(currency)),
            "note": (
                f"{retention.customers} customers billing on {retention.base_date:%b %-d, %Y}"
                if retention.customers
                else f"no customer was billing a year ago ({retention.base_date:%b %-d, %Y})"
            ),
            "others": "",
            "href": active,
        },
        {
            "title": "Billings this month",
            "value": money(bills.this_month_total, currency),
            "note": (
                f"{money(bills.last_month_total, currency)} last month "
                + change_text(
                    bills.this_month_total.get(currency, ZERO),
                    bills.last_month_total.get(currency, ZERO),
                )
            ).strip(),
            "others": others(bills.this_month_total, currency),
            "href": changelist(
                Invoice, status__in=issued, issue_date__gte=bills.this_month.start.isoformat()
            ),
        },
        {
            "title": "Outstanding",
            "value": money(open_items.outstanding, currency),
            "note": f"{open_items.outstanding_count} open invoices",
            "others": others(open_items.outstanding, currency),
            "href": changelist(Invoice, status=Invoice.Status.FINALIZED),
        },
        {
            "title": "Overdue",
            "value": money(open_items.overdue, currency),
            "note": f"{open_items.overdue_count} invoices past their due date",
            "others": others(open_items.overdue, currency),
            "href": changelist(
                Invoice, status=Invoice.Status.FINALIZED, due_date__lt=as_of.isoformat()
            ),
        },
        dso_card(as_of, currency),
        {
            "title": "Invoices awaiting review",
            "value": str(open_items.awaiting_review),
            "note": "draft invoices to check and finalize",
            "others": "",
            "href": changelist(Invoice, status=Invoice.Status.DRAFT),
        },
    ]
    bridge = [
        ("MRR on " + f"{month:%b %-d}", money(movements.start, currency), active),
        (
            f"+ New ({movements.new_count})",
            money(movements.new, currency),
            changelist(Subscription, start_date__gte=month.isoformat()),
        ),
        ("+ Expansion", money(movements.expansion, currency), active),
        ("− Contraction", money(movements.contraction, currency), active),
        (
            f"− Churn ({movements.churn_count})",
            money(movements.churn, currency),
            changelist(Subscription, status=Subscription.Status.ENDED),
        ),
        (f"MRR on {as_of:%b %-d}", money(movements.end, currency), active),
    ]
    usage_rows = [
        {"name": m.metric_name, "amount": format_money(m.amount, m.currency)}
        for m in usage.by_metric
        if m.currency == currency
    ]
    # One chart per metric: calls and tokens differ by orders of magnitude.
    usage_charts = [
        {
            "name": series.metric_name,
            "total": format_quantity(exact_sum(series.quantities)),
            "data": _chart(
                [f"{d:%b %-d}" for d in series.days],
                [
                    {
                        "label": series.metric_name,
                        "data": [float(q) for q in series.quantities],  # a chart's y, not money
                        "borderColor": COLORS[i % len(COLORS)],
                        "displayYAxis": True,
                        "maxTicksXLimit": 6,
                    }
                ],
            ),
        }
        for i, series in enumerate(usage.trend)
    ]
    forecast_rows = [
        {
            "month": f"{m.month.start:%B %Y}",
            "fixed": money(m.fixed, currency),
            "usage": money(m.usage, currency),
            "total": money(m.total, currency),
            "others": others(m.total, currency),
        }
        for m in outlook.months
    ]
    forecast_chart = _chart(
        [f"{m.month.start:%b %Y}" for m in outlook.months],
        [
            {
                "label": "Fixed fees",
                "data": [float(m.fixed.get(currency, ZERO)) for m in outlook.months],
                "backgroundColor": COLORS[0],
                **BAR,
            },
            {
                "label": "Usage",
                "data": [float(m.usage.get(currency, ZERO)) for m in outlook.months],
                "backgroundColor": COLORS[1],
                **BAR,
            },
        ],
    )
    return {
        "kpis": kpis,
        "bridge": bridge,
        "usage_rows": usage_rows,
        "usage_total": money(usage.total, currency),
        "usage_others": others(usage.total, currency),
        "usage_href": changelist(
            Invoice, status__in=issued, issue_date__gte=usage.month.start.isoformat()
        ),
        "usage_charts": usage_charts,
        "forecast_rows": forecast_rows,
        "forecast_chart": forecast_chart,
        "forecast_options": STACKED,
        "usage_options": USAGE_LINE,
        "forecast_method": outlook.method,
        "forecast_href": active,
    }


def sales_context(as_of: dt.date, currency: str, user) -> dict:
    figures = selectors.sales_figures(as_of, owner=user)
    return {
        "quote_states": [
            {
                "label": q.label,
                "count": q.count,
                "href": changelist(Quote, status=q.status),
            }
            for q in figures.quotes_by_status
        ],
        "expiring": [
            {
                "number": q.number,
                "customer": q.customer,
                "valid_until": q.valid_until,
                "status": Quote.Status(q.status).label,
                "href": change(Quote, q.pk),
            }
            for q in figures.expiring
        ],
        "expiring_href": changelist(
            Quote,
            status__in=",".join(selectors.OPEN_QUOTES),
            valid_until__gte=as_of.isoformat(),
            valid_until__lte=figures.expiring_until.isoformat(),
        ),
        "signed_arr": money(figures.signed_arr, currency),
        "signed_others": others(figures.signed_arr, currency),
        "signed_count": figures.signed_count,
        "signed_href": changelist(
            Quote,
            status=Quote.Status.ACCEPTED,
            accepted_at__date__gte=month_start(as_of).isoformat(),
        ),
        "renewals": [
            {
                "external_id": r.external_id,
                "customer": r.customer,
                "end_date": r.end_date,
                "arr": format_money(r.arr, r.currency),
                "href": change(Subscription, r.pk),
            }
            for r in figures.renewals
        ],
        "renewals_until": figures.renewals_until,
        "renewals_href": changelist(Subscription, status=Subscription.Status.ACTIVE),
    }


def dashboard_callback(request, context: dict) -> dict:
    user = request.user
    as_of = clock.today()
    currency = main_currency()
    context.update(
        {
            "as_of": as_of,
            "reporting_currency": currency,
            "show_finance": is_finance(user),
            "show_sales": is_sales(user),
        }
    )
    if context["show_finance"]:
        context.update(finance_context(as_of, currency))
    if context["show_sales"]:
        context.update(sales_context(as_of, currency, user))
    return context
