from celery import shared_task

from revrec import services


@shared_task
def revrec_sync() -> int:
    """The revenue job, hourly (revrec.services.revrec_sync): contracts, changes and credit
    notes, the recognition of the last month that is over, the journal. Returns the lines and
    entries posted."""
    return services.revrec_sync()
