from celery import shared_task

from quotes.services import quotes_expire_overdue


@shared_task
def expire_quotes() -> int:
    """Daily: quotes past their validity date become expired."""
    return quotes_expire_overdue()


@shared_task
def run_renewals() -> dict:
    """Daily: draft renewal quotes ahead of the term's end, renew automatically on its last day."""
    from quotes.renewals import renewals_run

    result = renewals_run()
    return {"created": result.created, "renewed": result.renewed, "failed": result.failed}
