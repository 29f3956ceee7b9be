from django.db import migrations


def create_roles(apps, schema_editor):
    from core.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("catalog", "0001_initial"),
        ("customers", "0001_initial"),
        ("quotes", "0001_initial"),
        ("subscriptions", "0001_initial"),
        ("metering", "0001_initial"),
        ("invoicing", "0001_initial"),
        ("receivables", "0001_initial"),
        ("revrec", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
