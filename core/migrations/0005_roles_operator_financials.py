from django.db import migrations


def sync(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    """The Operator role; customers' financial terms are Finance's; Sales reads what it sold
    (subscription items, billing periods, invoice lines); the Celery schedule is the Operator's."""

    dependencies = [
        ("core", "0004_roles_usage_alerts"),
        ("customers", "0003_customer_financials_permission"),
        ("axes", "0010_accessattemptexpiration"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
