from django.db import migrations


def sync(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    """Finance changes quantities and cancels subscriptions (subscriptions.change_contract)."""

    dependencies = [
        ("core", "0007_roles_credit_notes_voids"),
        ("subscriptions", "0005_contract_changes"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
