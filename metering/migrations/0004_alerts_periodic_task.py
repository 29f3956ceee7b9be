from django.db import migrations

from core.beat import migration_operation


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0003_usage_alerts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migration_operation(
            name="evaluate-usage-alerts",
            task="metering.tasks.evaluate_alerts",
            every_seconds=300,
        ),
    ]
