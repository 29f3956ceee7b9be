from django.db import migrations


def sync(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    """Finance issues credit notes and voids invoices, and reads credit notes."""

    dependencies = [
        ("core", "0006_roles_quote_approvals"),
        ("invoicing", "0006_credit_notes_and_voids"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
