"""The journal: double entries posted against the chart of accounts, in accounting periods.

post_entry is the one way in (post_entries posts many at once, with the same rules). An entry
balances by construction (its debits equal its credits, refused otherwise), is posted once per
source document (kind + source are unique: posting again returns the entry already posted), and
is dated in an open period: dated in a closed one, it lands on the first day of the first open
period after it, its original date kept. The period's row is locked while the entry is written,
so a close waits for postings in flight.
Entries are never edited: reverse_entry posts the mirror image.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ValidationError
from core.money import exact_sum, round_money
from core.periods import add_months
from customers.models import Customer
from revrec.bulk import insert_rows
from revrec.models import Account, AccountingPeriod, JournalEntry, JournalLine

ZERO = Decimal(0)


@dataclass(frozen=True)
class Line:
    """A debit or a credit on the account of `role` (Account.Role) or on `account`."""

    role: str | None = None
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    customer: Customer | None = None
    memo: str = ""
    account: Account | None = None


def account_for(role: str) -> Account:
    account = Account.objects.filter(role=role).first()
    if account is None:
        raise ValidationError(
            f"No account has the role “{Account.Role(role).label}”: finance sets it on an "
            "account of the chart (Revenue › Accounts)."
        )
    return account


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def period_for(day: dt.date, *, lock: bool = False) -> AccountingPeriod:
    """The month's period, made if it does not exist yet: open, or closed when a later month is
    closed already (closed periods are always the earliest ones: see revrec/close.py)."""
    start = month_start(day)
    period = AccountingPeriod.objects.filter(start=start).first()
    if period is None:
        later_closed = AccountingPeriod.objects.filter(
            start__gt=start, status=AccountingPeriod.Status.CLOSED
        ).exists()
        status = AccountingPeriod.Status.CLOSED if later_closed else AccountingPeriod.Status.OPEN
        period, _ = AccountingPeriod.objects.get_or_create(
            start=start, defaults={"end": add_months(start, 1), "status": status}
        )
    if lock:
        period = AccountingPeriod.objects.select_for_update().get(pk=period.pk)
    return period


def open_period_for(day: dt.date) -> AccountingPeriod:
    """The period an entry dated `day` is posted in, locked: its own if open, else the first open
    one after it."""
    period = period_for(day, lock=True)
    while period.status != AccountingPeriod.Status.OPEN:
        period = period_for(period.end, lock=True)
    return period


def _checked(lines: list[Line], currency: str, memo: str) -> list[Line]:
    """The entry's lines other than zero, refused unless each is a debit or a credit in the
    currency's minor unit and their debits equal their credits."""
    lines = [line for line in lines if line.debit or line.credit]
    for line in lines:
        for amount in (line.debit, line.credit):
            if amount < 0 or round_money(amount, currency) != amount:
                raise ValidationError(
                    f"A journal line takes amounts of zero or more in {currency}'s minor unit: "
                    f"{amount} is not one."
                )
        if line.debit and line.credit:
            raise ValidationError("A journal line is a debit or a credit, not both.")
    debits, credits = exact_sum(x.debit for x in lines), exact_sum(x.credit for x in lines)
    if not lines or debits != credits:
        raise ValidationError(
            f"The entry does not balance: debits {debits}, credits {credits} ({memo})."
        )
    return lines


def post_entry(
    *,
    kind: str,
    source: str,
    on: dt.date,
    memo: str,
    currency: str,
    lines: list[Line],
    reverses: JournalEntry | None = None,
) -> JournalEntry:
    """Post a balanced entry once per (kind, source); returns it (the one already posted when
    the source was posted before)."""
    earlier = JournalEntry.objects.filter(kind=kind, source=source).first()
    if earlier is not None:
        return earlier
    currency = str(currency)
    lines = _checked(lines, currency, memo)
    try:
        with transaction.atomic():
            period = open_period_for(on)
            entry = JournalEntry.objects.create(
                period=period,
                entry_date=max(on, period.start),
                original_date=on,
                kind=kind,
                source=source,
                memo=memo[:300],
                currency=currency,
                reverses=reverses,
            )
            JournalLine.objects.bulk_create(
                JournalLine(
                    entry=entry,
                    account=line.account or account_for(line.role),
                    debit=line.debit,
                    credit=line.credit,
                    customer=line.customer,
                    memo=line.memo[:300],
                )
                for line in lines
            )
    except IntegrityError:
        earlier = JournalEntry.objects.filter(kind=kind, source=source).first()
        if earlier is None:
            raise
        return earlier  # the same document, posted at the same time
    entry.posted_now = True  # not one posted before (what a job counts)
    return entry


def reverse_entry(*, entry: JournalEntry, on: dt.date, memo: str) -> JournalEntry:
    """Post the mirror image of an entry (debits become credits), once."""
    lines = [
        Line(
            account=line.account,
            debit=line.credit,
            credit=line.debit,
            customer=line.customer,
            memo=line.memo,
        )
        for line in entry.lines.select_related("account", "customer")
    ]
    return post_entry(
        kind=f"reversal:{entry.kind}"[:30],
        source=f"entry:{entry.pk}",
        on=on,
        memo=memo,
        currency=entry.currency,
        lines=lines,
        reverses=entry,
    )


# How many entries post_entries writes in one transaction, and how many documents, lines or
# subscriptions the close's other batch steps take at once: large enough that a close of 10,000
# subscriptions takes a handful of batches, small enough that an IN list stays well under
# PostgreSQL's 65,535 parameters.
BATCH = 20_000


def post_entries(entries: list[dict]) -> list[JournalEntry]:
    """Post many entries (each the keyword arguments of post_entry) as post_entry posts each one,
    in a fixed number of queries per BATCH of them: the same checks (refused before anything is
    written if one fails), once per (kind, source) (returns the entry posted before, or the
    first of the list for a source listed twice), the same periods (a closed one redirected to
    the first open one after it, the periods' rows locked while the entries are written). New
    entries are marked `posted_now`. Returns the entries in the order given. If another run
    posts one of the same sources meanwhile, that batch falls back to post_entry one by one."""
    specs = []
    for spec in entries:
        currency = str(spec["currency"])
        specs.append(
            {
                **spec,
                "currency": currency,
                "lines": _checked(spec["lines"], currency, spec["memo"]),
                "reverses": spec.get("reverses"),
            }
        )
    roles = {line.role for spec in specs for line in spec["lines"] if line.account is None}
    accounts = {a.role: a for a in Account.objects.filter(role__in=roles)}
    for role in roles - set(accounts):
        account_for(role)  # raises: no account has the role
    posted: list[JournalEntry] = []
    for at in range(0, len(specs), BATCH):
        posted += _post_batch(specs[at : at + BATCH], accounts)
    return posted


def _values(obj, fields: list[str]) -> tuple:
    return tuple(getattr(obj, name) for name in fields)


def _post_batch(specs: list[dict], accounts: dict) -> list[JournalEntry]:
    keys = [(spec["kind"], spec["source"]) for spec in specs]
    try:
        with transaction.atomic():
            wanted = set(keys)
            found = {
                (e.kind, e.source): e
                for e in JournalEntry.objects.filter(
                    kind__in={k for k, _ in keys}, source__in={s for _, s in keys}
                )
                if (e.kind, e.source) in wanted
            }
            periods: dict[dt.date, AccountingPeriod] = {}
            new: dict[tuple[str, str], tuple[JournalEntry, dict]] = {}
            for key, spec in zip(keys, specs, strict=True):
                if key in found or key in new:
                    continue
                month = month_start(spec["on"])
                if month not in periods:
                    periods[month] = open_period_for(spec["on"])
                period = periods[month]
                entry = JournalEntry(
                    period=period,
                    entry_date=max(spec["on"], period.start),
                    original_date=spec["on"],
                    kind=spec["kind"],
                    source=spec["source"],
                    memo=spec["memo"][:300],
                    currency=spec["currency"],
                    reverses=spec["reverses"],
                )
                new[key] = (entry, spec)
            now = timezone.now()
            fields = ["period_id", "entry_date", "original_date", "kind", "source", "memo"]
            fields += ["currency", "reverses_id", "created_at"]
            made = [entry for entry, _ in new.values()]
            for entry in made:
                entry.created_at = now
            pks = insert_rows(JournalEntry, fields, [_values(e, fields) for e in made])
            for entry, pk in zip(made, pks, strict=True):
                entry.pk = pk
                entry._state.adding, entry._state.db = False, "default"
            insert_rows(
                JournalLine,
                ["entry_id", "account_id", "debit", "credit", "customer_id", "memo"],
                [
                    (
                        entry.pk,
                        (line.account or accounts[line.role]).pk,
                        line.debit,
                        line.credit,
                        line.customer.pk if line.customer is not None else None,
                        line.memo[:300],
                    )
                    for entry, spec in new.values()
                    for line in spec["lines"]
                ],
            )
    except IntegrityError:
        # Another run posted some of these sources meanwhile: one by one, as post_entry does.
        return [post_entry(**spec) for spec in specs]
    for entry, _ in new.values():
        entry.posted_now = True
    return [found[key] if key in found else new[key][0] for key in keys]
