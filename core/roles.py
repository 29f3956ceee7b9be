"""Roles are Django groups. Sales builds quotes; Finance runs catalog, billing, cash and revenue."""

ALL = ("add", "change", "delete", "view")

ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "Sales": {
        "quotes.quote": ALL,
        "quotes.quoteline": ALL,
        "customers.customer": ("add", "change", "view"),
        "catalog.plan": ("view",),
        "catalog.charge": ("view",),
        "catalog.billablemetric": ("view",),
        "catalog.chargetier": ("view",),
        "subscriptions.subscription": ("view",),
        "invoicing.invoice": ("view",),
    },
    "Finance": {
        "catalog.plan": ALL,
        "catalog.charge": ALL,
        "catalog.billablemetric": ALL,
        "catalog.chargetier": ALL,
        "catalog.planalertdefault": ALL,
        "customers.customer": ALL,
        "customers.portalmembership": ALL,
        "quotes.quote": ("view", "change"),
        "quotes.quoteline": ("view",),
        "subscriptions.subscription": ("view", "change"),
        "subscriptions.subscriptionitem": ("view",),
        "subscriptions.billingperiod": ("view",),
        "subscriptions.prepaidcredit": ("add", "view"),
        "metering.event": ("view",),
        "metering.usagealert": ("view", "add", "change"),
        "metering.alertfiring": ("view",),
        "invoicing.invoice": ("view", "change", "delete"),
        "invoicing.invoiceline": ("view",),
        "invoicing.numberseries": ("view",),
        "receivables.payment": ("add", "change", "view"),
        "receivables.paymentallocation": ("view",),
        "revrec.revenueschedule": ("view",),
        "revrec.revenuescheduleline": ("view",),
        "django_celery_beat.periodictask": ALL,
        "django_celery_beat.intervalschedule": ALL,
        "django_celery_beat.crontabschedule": ALL,
    },
}


def sync_roles(apps) -> None:
    """Create the groups and grant exactly their permissions (idempotent)."""
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
            for action in actions:
                perms.append(
                    permission_model.objects.get(
                        content_type__app_label=app_label, codename=f"{action}_{model}"
                    )
                )
        group.permissions.set(perms)
