"""Reads of the journal."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from core.money import exact_sum
from customers.models import Customer
from revrec.models import Account, JournalLine

ZERO = Decimal(0)
# Accounts whose balance is debits − credits; the others (liabilities, equity, revenue) show
# credits − debits, so every balance reads positive in its usual direction.
DEBIT_NORMAL = (Account.Type.ASSET, Account.Type.EXPENSE)


def account_balances(
    *, as_of: dt.date | None = None, customer: Customer | None = None
) -> dict[tuple[str, str], Decimal]:
    """{(account role, or code for an account without one, currency): balance} from the journal
    lines of the entries dated on or before `as_of` (all of them by default), for one customer's
    lines when given. A balance is debits − credits on an asset or expense account, credits −
    debits on the others. Sums are exact: SQL SUM on PostgreSQL (numeric), exact_sum in Python
    on SQLite (whose SUM is floating point). Accounts without lines are left out."""
    lines = JournalLine.objects.order_by()
    if as_of is not None:
        lines = lines.filter(entry__entry_date__lte=as_of)
    if customer is not None:
        lines = lines.filter(customer=customer)
    keys = ("account_id", "entry__currency")
    sums: dict[tuple[int, str], list[Decimal]] = {}
    if connection.vendor == "postgresql":
        for account_id, currency, debit, credit in lines.values_list(*keys).annotate(
            debit=Sum("debit"), credit=Sum("credit")
        ):
            sums[(account_id, str(currency))] = [debit, credit]
    else:
        grouped: dict = defaultdict(lambda: ([], []))
        for account_id, currency, debit, credit in lines.values_list(*keys, "debit", "credit"):
            debits, credits = grouped[(account_id, str(currency))]
            debits.append(debit)
            credits.append(credit)
        for key, (debits, credits) in grouped.items():
            sums[key] = [exact_sum(debits), exact_sum(credits)]
    accounts = Account.objects.in_bulk({account_id for account_id, _ in sums})
    balances = {}
    for (account_id, currency), (debit, credit) in sums.items():
        account = accounts[account_id]
        balance = debit - credit if account.type in DEBIT_NORMAL else credit - debit
        balances[(account.role or account.code, currency)] = balance
    return balances
