"""The admin's sidebar: grouped by the user's work, each role seeing only its items.

A group is shown to a user whose permissions say the group is their work (`gate`); inside it,
each item needs the permission to view its model. A link already shown in an earlier group is not
repeated (the superuser, who passes every gate, sees each model once).
"""

from django.urls import reverse_lazy
from django.utils.text import format_lazy


def _can(perm: str):
    def check(request) -> bool:
        return request.user.has_perm(perm)

    return check


def _item(title: str, icon: str, model: str) -> dict:
    app_label, model_name = model.split(".")
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(f"admin:{app_label}_{model_name}_changelist"),
        "permission": _can(f"{app_label}.view_{model_name}"),
    }


def _page(title: str, icon: str, url_name: str, permission) -> dict:
    """An admin page that is no model's changelist (shadow billing): its URL and who may open it."""
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(url_name),
        "permission": lambda request: permission(request.user),
    }


def _may_shadow_bill(user) -> bool:
    from invoicing.admin_views import may_shadow_bill  # settings import this module: import late

    return may_shadow_bill(user)


def _may_see_aging(user) -> bool:
    from receivables.admin_views import (
        may_see_receivables,  # settings import this module: import late
    )

    return may_see_receivables(user)


def _may_recognize(user) -> bool:
    from revrec.admin_contracts import may_recognize  # settings import this module: import late

    return may_recognize(user)


def _may_see_ledger(user) -> bool:
    from revrec.admin_ledger import may_see_ledger  # settings import this module: import late

    return may_see_ledger(user)


# (title, gate: the permission that makes the group someone's work, items)
GROUPS = [
    (
        "Sales",
        "quotes.add_quote",
        [
            _item("Customers", "groups", "customers.customer"),
            _item("Quotes", "request_quote", "quotes.quote"),
            _item("Subscriptions", "autorenew", "subscriptions.subscription"),
            _item("Invoices", "receipt_long", "invoicing.invoice"),
        ],
    ),
    (
        "Billing",
        "invoicing.change_invoice",
        [
            _item("Customers", "groups", "customers.customer"),
            _item("Quotes", "request_quote", "quotes.quote"),
            {
                # The quotes waiting for finance's approval, with their count
                "title": "Approval queue",
                "icon": "approval",
                "link": format_lazy(
                    "{}?status__exact=in_review", reverse_lazy("admin:quotes_quote_changelist")
                ),
                "permission": _can("quotes.approve_quote"),
                "badge": "quotes.admin.approval_queue_badge",
            },
            _item("Approval rules", "rule", "quotes.approvalrule"),
            _item("Invoices", "receipt_long", "invoicing.invoice"),
            _item("Billing schedule", "event_repeat", "subscriptions.subscription"),
            _item("Prepaid credits", "savings", "subscriptions.prepaidcredit"),
            _item("Usage events", "data_usage", "metering.event"),
            _item("Usage alerts", "notifications", "metering.usagealert"),
            _item("Alert firings", "notifications_active", "metering.alertfiring"),
            _item("Invoice numbers", "pin", "invoicing.numberseries"),
            _page(
                "Shadow billing",
                "difference",
                "invoicing-shadow-billing",
                _may_shadow_bill,  # the page's own rule: finance who can view invoices
            ),
        ],
    ),
    (
        "Receivables",
        "receivables.view_payment",
        [
            _item("Payments", "payments", "receivables.payment"),
            _page("AR aging", "hourglass_bottom", "receivables-aging", _may_see_aging),
            _page(
                "Credit balances",
                "account_balance_wallet",
                "receivables-credit-balances",
                _may_see_aging,  # the same finance check as the aging page
            ),
            _page(
                "Bank statements",
                "account_balance",
                "admin:receivables_bankstatement_changelist",
                _may_see_aging,  # the same finance check (may_see_receivables)
            ),
            _page(
                "Unmatched bank lines",
                "rule",
                "admin:receivables_bankline_changelist",
                _may_see_aging,
            ),
        ],
    ),
    (
        "Revenue",
        "revrec.view_revenuecontract",
        [
            _item("Revenue contracts", "contract", "revrec.revenuecontract"),
            _page(
                "Recognize revenue",
                "play_arrow",
                "admin:revrec_revenuecontract_recognize",
                _may_recognize,
            ),
            _item("Accounting periods", "calendar_month", "revrec.accountingperiod"),
            _item("Journal entries", "menu_book", "revrec.journalentry"),
            _page(
                "Trial balance",
                "balance",
                "admin:revrec_journalentry_trial_balance",
                _may_see_ledger,
            ),
            _page(
                "Deferred revenue",
                "hourglass_bottom",
                "admin:revrec_journalentry_deferred_rollforward",
                _may_see_ledger,
            ),
            _page("Revenue by product", "table_chart", "revrec-revenue-report", _may_see_ledger),
            _page("Revenue waterfall", "waterfall_chart", "revrec-waterfall", _may_see_ledger),
            _page("Unbilled receivables", "pending_actions", "revrec-unbilled", _may_see_ledger),
            _page("Remaining obligations", "event_upcoming", "revrec-rpo", _may_see_ledger),
            _item("Accounts", "account_tree", "revrec.account"),
        ],
    ),
    (
        "Catalog",
        "catalog.change_plan",
        [
            _item("Billable metrics", "straighten", "catalog.billablemetric"),
            _item("Plans", "inventory_2", "catalog.plan"),
            _item("Charges", "sell", "catalog.charge"),
        ],
    ),
    (
        "Operations",
        "auth.view_user",
        [
            _item("API keys", "key", "core.apikey"),
            _item("Periodic tasks", "schedule", "django_celery_beat.periodictask"),
            _item("Intervals", "timer", "django_celery_beat.intervalschedule"),
            _item("Crontabs", "calendar_month", "django_celery_beat.crontabschedule"),
            _item("Clocked", "alarm", "django_celery_beat.clockedschedule"),
            _item("Solar", "wb_sunny", "django_celery_beat.solarschedule"),
            _item("Users", "person", "auth.user"),
            _item("Groups", "group_work", "auth.group"),
            _item("Login attempts", "lock_person", "axes.accessattempt"),
            _item("Login failures", "gpp_bad", "axes.accessfailurelog"),
            _item("Login log", "login", "axes.accesslog"),
        ],
    ),
]


def sidebar_navigation(request) -> list[dict]:
    """UNFOLD["SIDEBAR"]["navigation"]: the groups and items this user may see."""
    user, shown, navigation = request.user, set(), []
    for title, gate, items in GROUPS:
        if not user.has_perm(gate):
            continue
        visible = []
        for item in items:
            link = str(item["link"])
            if link in shown or not item["permission"](request):
                continue
            shown.add(link)
            visible.append(item)
        if visible:
            navigation.append({"title": title, "separator": True, "items": visible})
    return navigation
