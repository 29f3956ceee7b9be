"""The billing run at scale: a plan of chunks, each chunk billed as one unit of work.

`billing_plan(today)` lists the subscriptions a run on `today` looks at, in chunks of
settings.BILLING_CHUNK_SIZE (by id, a stable order); `bill_chunk(ids, today)` bills one chunk.
The beat task sends one Celery task per chunk (invoicing.tasks), so more workers bill faster;
`invoicing.services.billing_run` runs the same chunks one after the other in process. Re-running
the plan or a chunk bills nothing twice: the one-invoice-per-subscription-per-date constraint is
the last word.
"""

import datetime as dt
import logging

from django.conf import settings

from invoicing.schedule import due_subscriptions

logger = logging.getLogger(__name__)


def billing_plan(today: dt.date, chunk_size: int | None = None) -> list[list[int]]:
    """The ids of the subscriptions a run on `today` looks at, in chunks, in id order."""
    size = chunk_size or settings.BILLING_CHUNK_SIZE
    ids = list(due_subscriptions(today).values_list("pk", flat=True))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def bill_chunk(subscription_ids, today: dt.date):
    """Bill every date due up to `today` of the chunk's subscriptions. One subscription's bad
    data does not stop the others: it is reported in the result's `failed`."""
    from invoicing.services import BillingRunResult, subscription_bill
    from subscriptions.models import Subscription

    invoices, failed = [], {}
    subscriptions = Subscription.objects.filter(pk__in=subscription_ids).order_by("pk")
    for subscription in subscriptions:
        try:
            invoices += subscription_bill(subscription=subscription, today=today)
        except Exception as exc:  # one bad subscription must not stop everyone else's billing
            logger.exception("billing %s failed", subscription.external_id)
            failed[subscription.external_id] = getattr(exc, "message", None) or repr(exc)
    return BillingRunResult(
        invoices=invoices, subscriptions_seen=len(subscription_ids), failed=failed
    )
