from celery import shared_task

from revrec import postings, services


@shared_task
def revrec_sync() -> int:
    """Build revenue schedules for new subscriptions and recognize what has been earned, then
    post the journal entries of the billing and receivables documents not posted yet. Returns
    the schedule lines recognized (the journal job is idempotent and counts its own)."""
    recognized = services.revrec_sync()
    postings.journal_sync()
    return recognized
