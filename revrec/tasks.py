from celery import shared_task

from revrec import services


@shared_task
def revrec_sync() -> int:
    """Build revenue schedules for new subscriptions and recognize what has been earned."""
    return services.revrec_sync()
