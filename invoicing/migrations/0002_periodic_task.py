from django.db import migrations

from core.beat import migration_operation


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migration_operation(
            name="run-billing-hourly", task="invoicing.tasks.run_billing", every_seconds=3600
        ),
    ]
