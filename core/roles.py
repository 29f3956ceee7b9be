"""Roles are Django groups: each person sees what their job needs, and no more.

Sales builds quotes and customers (not their financial terms); Finance runs catalog, billing, cash
and revenue; an Operator runs the machinery (API keys, the Celery schedule, users, login lockouts).
The role × action matrix is written out in docs/operations.md, checked by tests/core/test_roles.py.

An action is a default permission verb ("view", "change", …) or the codename of a model's own
permission (``change_customer_financials``).
"""

ALL = ("add", "change", "delete", "view")
FINANCIALS = "change_customer_financials"  # customers.Customer.Meta.permissions
APPROVE_QUOTE = "approve_quote"  # quotes.Quote.Meta.permissions
ISSUE_CREDIT_NOTE = "issue_credit_note"  # invoicing.Invoice.Meta.permissions
VOID_INVOICE = "void_invoice"  # invoicing.Invoice.Meta.permissions
CHANGE_CONTRACT = "change_contract"  # subscriptions.Subscription.Meta.permissions

ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "Sales": {
        "quotes.quote": ALL,
        "quotes.quoteline": ALL,
        "quotes.quotelinetier": ALL,
        "quotes.quotelinephase": ALL,
        "quotes.quotestatuschange": ("view",),
        "quotes.approvalrule": ("view",),
        "customers.customer": ("add", "change", "view"),
        "catalog.plan": ("view",),
        "catalog.charge": ("view",),
        "catalog.billablemetric": ("view",),
        "catalog.chargetier": ("view",),
        # The subscription a rep sold, with its items and billing schedule; its invoices, with
        # their lines: read-only.
        "subscriptions.subscription": ("view",),
        "subscriptions.subscriptionitem": ("view",),
        "subscriptions.billingperiod": ("view",),
        "invoicing.invoice": ("view",),
        "invoicing.invoiceline": ("view",),
    },
    "Finance": {
        "catalog.plan": ALL,
        "catalog.charge": ALL,
        "catalog.billablemetric": ALL,
        "catalog.chargetier": ALL,
        "catalog.planalertdefault": ALL,
        "catalog.standalonesellingprice": ALL,  # the SSP price book, on the plan's page
        "customers.customer": (*ALL, FINANCIALS),
        "customers.portalmembership": ALL,
        "quotes.quote": ("view", "change", APPROVE_QUOTE),
        "quotes.quoteline": ("view",),
        "quotes.quotelinetier": ("view",),
        "quotes.quotelinephase": ("view",),
        "quotes.quotestatuschange": ("view",),
        "quotes.approvalrule": ALL,
        # Seat changes and cancellations from the subscription's page (amendments by quote).
        "subscriptions.subscription": ("view", "change", CHANGE_CONTRACT),
        "subscriptions.subscriptionitem": ("view",),
        "subscriptions.billingperiod": ("view",),
        "subscriptions.prepaidcredit": ("add", "view"),
        "metering.event": ("view",),
        "metering.usagealert": ("view", "add", "change"),
        "metering.alertfiring": ("view",),
        "invoicing.invoice": ("view", "change", "delete", ISSUE_CREDIT_NOTE, VOID_INVOICE),
        "invoicing.invoiceline": ("view",),
        "invoicing.creditnote": ("view",),
        "invoicing.creditnoteline": ("view",),
        "invoicing.numberseries": ("view",),
        "receivables.payment": ("add", "change", "view"),
        "receivables.paymentallocation": ("view",),
        "receivables.dunningpolicy": ALL,
        "receivables.dunningstep": ALL,
        "receivables.dunningpause": ALL,
        "receivables.dunningnotice": ("view",),
        # Bank statement import: upload, then confirm lines (which records payments).
        "receivables.bankstatement": ("add", "view"),
        "receivables.bankline": ("view",),
        # Revenue contracts, obligations and their monthly lines: written by the recognition run.
        "revrec.revenuecontract": ("view",),
        "revrec.performanceobligation": ("view",),
        "revrec.recognitionline": ("view",),
        # The chart of accounts is finance's; periods are closed and reopened through services
        # (the period page), and the journal is read-only: entries come from documents.
        "revrec.account": ("add", "change", "view"),
        "revrec.accountingperiod": ("change", "view"),
        "revrec.journalentry": ("view",),
        "revrec.journalline": ("view",),
        # The schedule is the operator's: finance sees when billing runs, and does not edit it.
        "django_celery_beat.periodictask": ("view",),
        "django_celery_beat.intervalschedule": ("view",),
        "django_celery_beat.crontabschedule": ("view",),
    },
    "Operator": {
        "core.apikey": ("view", "change"),  # revoke; keys are made with `create_api_key`
        "auth.user": ALL,
        "auth.group": ("view",),  # groups are these roles, defined here in code
        "django_celery_beat.periodictask": ALL,
        "django_celery_beat.intervalschedule": ALL,
        "django_celery_beat.crontabschedule": ALL,
        "django_celery_beat.clockedschedule": ALL,
        "django_celery_beat.solarschedule": ALL,
        "axes.accessattempt": ("view", "delete"),  # deleting an attempt lifts a lockout
        "axes.accesslog": ("view",),
        "axes.accessfailurelog": ("view",),
    },
}


def codename(action: str, model: str) -> str:
    return action if "_" in action else f"{action}_{model}"


def sync_roles(apps) -> None:
    """Create the groups and grant exactly their permissions (idempotent).

    Called by data migrations with the migration state: a grant on a model or permission that
    does not exist yet at that point is left for the later migration that syncs again.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, grants in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        perms = []
        for label, actions in grants.items():
            app_label, model = label.split(".")
            try:
                model_class = apps.get_model(app_label, model)
            except LookupError:
                continue  # not migrated yet
            known = {
                *(f"{verb}_{model}" for verb in model_class._meta.default_permissions),
                *(name for name, _ in model_class._meta.permissions),
            }
            for action in actions:
                if codename(action, model) not in known:
                    continue  # a permission added by a later migration
                perms.append(
                    permission_model.objects.get(
                        content_type__app_label=app_label, codename=codename(action, model)
                    )
                )
        group.permissions.set(perms)
