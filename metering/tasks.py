from celery import shared_task

from metering.alerts import alerts_evaluate


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def evaluate_alerts() -> int:
    """The periodic usage-alert job (beat, every 5 minutes): fire what reached its threshold."""
    return len(alerts_evaluate())
