from celery import shared_task

from quotes.services import quotes_expire_overdue


@shared_task
def expire_quotes() -> int:
    """Daily: quotes past their validity date become expired."""
    return quotes_expire_overdue()
