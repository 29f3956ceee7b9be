from celery import shared_task


@shared_task
def send_dunning() -> int:
    """Daily: email each open invoice the dunning step whose day has come (once per step)."""
    from receivables.dunning import dunning_run

    return len(dunning_run().sent)
