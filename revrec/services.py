"""The revenue job (revrec.tasks.revrec_sync, hourly, and the demo's replay)."""

import datetime as dt

from core import clock
from core.periods import add_months, month_start
from revrec import postings, recognition


def revrec_sync(*, today: dt.date | None = None) -> int:
    """Revenue contracts for new subscriptions and renewals, the contract changes and credit
    notes not applied yet, the recognition of the last month that is over (its usage accrued
    if not invoiced yet), then the journal entries of the documents dated by `today` (default:
    today). Each step is idempotent. Returns the recognition lines and entries posted."""
    today = today or clock.today()
    recognition.contracts_sync()
    posted = recognition.recognize(add_months(month_start(today), -1))
    return posted + postings.journal_sync(today=today)
