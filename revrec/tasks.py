from celery import shared_task

from core import clock
from core.periods import add_months, month_start
from revrec import postings, recognition, services


@shared_task
def revrec_sync() -> int:
    """Build revenue schedules for new subscriptions and recognize what has been earned; then
    the revenue contracts (new subscriptions, changes) and the recognition of the last month
    that is over, and the journal entries of the billing and receivables documents not posted
    yet (each idempotent: every line and document is posted once). Returns the schedule lines
    recognized."""
    count = services.revrec_sync()
    recognition.contracts_sync()
    recognition.recognize(add_months(month_start(clock.today()), -1))
    postings.journal_sync()
    return count
