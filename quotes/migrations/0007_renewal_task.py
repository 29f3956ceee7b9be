from django.db import migrations

from core.beat import migration_operation


class Migration(migrations.Migration):
    dependencies = [
        ("quotes", "0006_line_replaces"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migration_operation(
            name="run-renewals-daily", task="quotes.tasks.run_renewals", every_seconds=86400
        ),
    ]
