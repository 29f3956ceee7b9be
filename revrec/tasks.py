from celery import shared_task

from core import clock
from core.periods import add_months, month_start
from revrec import recognition, services


@shared_task
def revrec_sync() -> int:
    """Build revenue schedules for new subscriptions and recognize what has been earned; then
    the revenue contracts (new subscriptions, changes) and the recognition of the last month
    that is over (idempotent: each line is posted once)."""
    count = services.revrec_sync()
    recognition.contracts_sync()
    recognition.recognize(add_months(month_start(clock.today()), -1))
    return count
