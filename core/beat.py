"""Periodic tasks are rows (django-celery-beat), created by data migrations so that finance can
change or pause them in the admin without a deploy; settings do not overwrite them."""

import datetime as dt

from django.utils import timezone


def ensure_periodic_task(apps, *, name: str, task: str, every_seconds: int) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = interval_model.objects.get_or_create(every=every_seconds, period="seconds")
    # A last run one interval ago makes the job due as soon as beat first starts.
    last_run = timezone.now() - dt.timedelta(seconds=every_seconds)
    task_model.objects.get_or_create(
        name=name, defaults={"task": task, "interval": interval, "last_run_at": last_run}
    )


def migration_operation(*, name: str, task: str, every_seconds: int):
    from django.db import migrations

    def forward(apps, schema_editor):
        ensure_periodic_task(apps, name=name, task=task, every_seconds=every_seconds)

    def backward(apps, schema_editor):
        apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()

    return migrations.RunPython(forward, backward)
