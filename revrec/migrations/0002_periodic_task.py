from django.db import migrations

from core.beat import migration_operation


class Migration(migrations.Migration):
    dependencies = [
        ("revrec", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migration_operation(
            name="revrec-sync-hourly", task="revrec.tasks.revrec_sync", every_seconds=3600
        ),
    ]
