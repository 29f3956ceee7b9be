from django.db import migrations


def sync(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    """Grants on the usage alert models (plan defaults, subscription alerts, firings)."""

    dependencies = [
        ("core", "0003_roles_tiers_credits"),
        ("catalog", "0004_plan_alert_defaults"),
        ("metering", "0003_usage_alerts"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
