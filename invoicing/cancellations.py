"""What a cancellation settles once its final invoice is out: the unused prepaid time credited
by a credit note, and the prepaid credits by the contract's rule (forfeited or refunded)."""

import datetime as dt

from subscriptions.models import Subscription


def cancellation_settle(*, subscription: Subscription, today: dt.date) -> None:
    """Settle a cancelled subscription (idempotent: keyed by its cancellation)."""
