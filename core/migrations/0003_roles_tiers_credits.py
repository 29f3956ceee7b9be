from django.db import migrations


def sync(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    """Grants on the models added with the pricing models and prepaid credits."""

    dependencies = [
        ("core", "0002_roles"),
        ("catalog", "0002_pricing_models"),
        ("subscriptions", "0002_trial_groups_credits"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
