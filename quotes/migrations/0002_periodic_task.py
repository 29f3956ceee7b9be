from django.db import migrations

from core.beat import migration_operation


class Migration(migrations.Migration):
    dependencies = [
        ("quotes", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migration_operation(
            name="expire-quotes-daily", task="quotes.tasks.expire_quotes", every_seconds=86400
        ),
    ]
