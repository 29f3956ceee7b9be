from django.db import migrations


def sync(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    """Finance approves quotes and edits the approval rules; Sales edits lines' tiers and ramp
    phases and reads the rules and each quote's status history."""

    dependencies = [
        ("core", "0005_roles_operator_financials"),
        ("quotes", "0004_cpq"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
