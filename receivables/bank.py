"""Bank statement import: a CSV of bank lines, each matched to an invoice for finance to confirm.

The file (UTF-8, comma- or semicolon-separated, one header row) has the columns date, amount,
reference and payer (header names tolerant: "Booking date", "Description", "Name", …), and
optionally currency. Dates are ISO (2026-03-05) or day first (05/03/2026 — as European banks
export; month-first US dates are not accepted, they would be read wrong silently). Amounts use
"." for decimals with optional "," thousands separators (1,250.00). Negative lines are money
going out: skipped, and counted.

All or nothing: a file with a bad row imports nothing, and every bad row is reported with its
line number and what is wrong — fix the file and upload it again (nobody has to work out which
lines made it in). The same file twice is refused (its SHA-256); a later file that overlaps an
earlier one records only the lines not seen before (BankLine.fingerprint).

Matching, first rule that gives one open invoice:
1. an invoice number in the reference (INV-000123, also INV-123): the invoice must be open and
   in the line's currency;
2. the payer is a customer (name or external id, case-insensitive, in the line's currency) with
   exactly one open invoice of exactly the line's amount.
Otherwise the line is unmatched, with a note saying why, and waits in the queue. Confirming a
line records the payment (payment_record, idempotency key from the line's fingerprint: confirming
twice records once).
"""

import csv
import datetime as dt
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import Q

from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_money
from core.money import round_money
from customers.models import Customer
from invoicing.models import Invoice
from receivables.models import BankLine, BankStatement, Payment
from receivables.services import open_invoices, payment_record

# Accepted header names (lower case, spaces/underscores/dashes removed) for each column.
COLUMNS = {
    "date": {"date", "bookingdate", "bookeddate", "bookedon", "valuedate", "transactiondate"},
    "amount": {"amount", "credit", "value", "amountin"},
    "reference": {"reference", "ref", "description", "details", "memo", "remittanceinformation"},
    "payer": {"payer", "payername", "name", "counterparty", "from", "remitter"},
    "currency": {"currency", "ccy"},
}
REQUIRED = ("date", "amount", "reference", "payer")
MAX_ERRORS = 50  # a wrong file (another bank's layout) would list every row: the first are enough

AMOUNT = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
INVOICE_NUMBER = re.compile(r"\b([A-Z]{2,5})[- ]?(\d{1,9})\b")


@dataclass
class ParsedLine:
    row: int
    booked_on: dt.date
    amount: Decimal
    currency: str
    reference: str
    payer: str


@dataclass
class Parsed:
    lines: list[ParsedLine] = field(default_factory=list)  # money in
    outgoing: list[int] = field(default_factory=list)  # row numbers of negative lines
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    statement: BankStatement
    already_imported: bool = False  # the same file: nothing recorded
    outgoing_rows: list[int] = field(default_factory=list)

    @property
    def message(self) -> str:
        s = self.statement
        if self.already_imported:
            return (
                f"{s.file_name} was already imported on {s.uploaded_at:%b %-d, %Y}: nothing was "
                "recorded twice."
            )
        parts = [f"{s.new_count} new line{'s' if s.new_count != 1 else ''} recorded"]
        if s.duplicate_count:
            parts.append(f"{s.duplicate_count} already recorded from an earlier statement")
        if s.outgoing_count:
            rows = ", ".join(str(r) for r in self.outgoing_rows)
            parts.append(f"{s.outgoing_count} outgoing (negative) skipped: line(s) {rows}")
        return f"{s.file_name}: " + "; ".join(parts) + "."


def _key(header: str) -> str:
    return re.sub(r"[\s_\-.]", "", header.strip().lower())


def _parse_date(text: str) -> dt.date:
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(f'the date "{text}" is not YYYY-MM-DD or DD/MM/YYYY')


def _parse_amount(text: str, currency: str) -> Decimal:
    text = text.strip().replace(" ", "")
    if not AMOUNT.match(text):
        if re.match(r"^[+-]?\d+,\d{1,2}$", text):
            raise ValueError(f'the amount "{text}" uses a decimal comma: write it with a point')
        raise ValueError(f'the amount "{text}" is not a number like 1250.00 or 1,250.00')
    try:
        amount = Decimal(text.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits numbers only
        raise ValueError(f'the amount "{text}" is not a number') from exc
    if amount == 0:
        raise ValueError("the amount is zero")
    if round_money(amount, currency) != amount:
        raise ValueError(f'the amount "{text}" has more decimals than {currency} allows')
    return amount


def statement_parse(content: bytes, *, currency: str) -> Parsed:
    """The file's lines, or its errors (each with the line number in the file)."""
    parsed = Parsed()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        parsed.errors.append("The file is not UTF-8 text: export the statement as CSV (UTF-8).")
        return parsed
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(rows, None)
    if not header or not any(h.strip() for h in header):
        parsed.errors.append("The file is empty: it needs a header row and at least one line.")
        return parsed
    where: dict[str, int] = {}
    for index, name in enumerate(header):
        for column, names in COLUMNS.items():
            if _key(name) in names and column not in where:
                where[column] = index
    missing = [c for c in REQUIRED if c not in where]
    if missing:
        parsed.errors.append(
            f"Line 1: no column for {', '.join(missing)} (the header has "
            f"{', '.join(repr(h) for h in header)}). The columns are date, amount, reference "
            "and payer, optionally currency."
        )
        return parsed
    today = clock.today()
    any_row = False
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        any_row = True
        if len(row) != len(header):
            hint = " (a comma in an amount or reference: put the field in quotes)"
            parsed.errors.append(
                f"Line {number}: {len(row)} field(s), the header has {len(header)}"
                f"{hint if len(row) > len(header) else ''}."
            )
            continue
        problems = []
        line_currency = currency
        if "currency" in where and row[where["currency"]].strip():
            line_currency = row[where["currency"]].strip().upper()
            if line_currency != str(currency):
                problems.append(
                    f"the currency {line_currency} is not the account's ({currency}): upload "
                    "each account's statement on its own"
                )
        booked_on = amount = None
        try:
            booked_on = _parse_date(row[where["date"]])
            if booked_on > today:
                problems.append(f"the date {booked_on} is in the future")
        except ValueError as exc:
            problems.append(str(exc))
        try:
            amount = _parse_amount(row[where["amount"]], str(currency))
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            parsed.errors.append(f"Line {number}: {'; '.join(problems)}.")
            continue
        if amount < 0:
            parsed.outgoing.append(number)
            continue
        parsed.lines.append(
            ParsedLine(
                row=number,
                booked_on=booked_on,
                amount=amount,
                currency=str(currency),
                reference=row[where["reference"]].strip()[:300],
                payer=row[where["payer"]].strip()[:200],
            )
        )
    if not any_row and not parsed.errors:
        parsed.errors.append("The file has a header but no lines.")
    if len(parsed.errors) > MAX_ERRORS:
        more = len(parsed.errors) - MAX_ERRORS
        parsed.errors = [*parsed.errors[:MAX_ERRORS], f"… and {more} more bad line(s)."]
    return parsed


def fingerprints(lines: list[ParsedLine]) -> list[str]:
    """Each line's fingerprint; identical lines within the file are told apart by their count."""
    seen: Counter = Counter()
    out = []
    for line in lines:
        base = (line.booked_on.isoformat(), str(line.amount), line.currency, line.reference,
                line.payer)  # fmt: skip
        seen[base] += 1
        raw = "\x1f".join([*base, str(seen[base])])
        out.append(hashlib.sha256(raw.encode()).hexdigest())
    return out


@dataclass
class Match:
    status: str
    customer: Customer | None = None
    invoice: Invoice | None = None
    rule: str = ""
    note: str = ""


def _open(invoice: Invoice, currency: str) -> bool:
    return (
        invoice.status == Invoice.Status.FINALIZED
        and str(invoice.currency) == currency
        and invoice.open_amount > 0
    )


def line_match(*, reference: str, payer: str, amount: Decimal, currency: str) -> Match:
    """The first rule that gives exactly one open invoice (module docstring), else why not."""
    notes = []
    numbers = set()
    for prefix, digits in INVOICE_NUMBER.findall(reference.upper()):
        numbers |= {f"{prefix}-{digits}", f"{prefix}-{int(digits):06d}"}
    if numbers:
        named = list(Invoice.objects.filter(number__in=numbers).select_related("customer"))
        usable = [i for i in named if _open(i, currency)]
        if len(usable) == 1:
            invoice = usable[0]
            return Match(BankLine.Status.PROPOSED, invoice.customer, invoice, BankLine.Rule.NUMBER)
        for invoice in named:
            if str(invoice.currency) != currency:
                notes.append(f"{invoice.number} is in {invoice.currency}, not {currency}")
            elif invoice not in usable:
                notes.append(f"{invoice.number} has nothing left to pay")
        if len(usable) > 1:
            notes.append(f"the reference names {len(usable)} open invoices")
    customer = None
    if payer:
        customers = list(
            Customer.objects.filter(
                Q(name__iexact=payer.strip()) | Q(external_id__iexact=payer.strip()),
                currency=currency,
            )[:2]
        )
        if len(customers) > 1:
            notes.append(f'more than one customer is called "{payer}"')
        elif customers:
            customer = customers[0]
            exact = [i for i in open_invoices(customer) if i.open_amount == amount]
            if len(exact) == 1:
                return Match(BankLine.Status.PROPOSED, customer, exact[0], BankLine.Rule.AMOUNT)
            if exact:
                listed = ", ".join(i.number for i in exact)
                notes.append(
                    f"{customer} has {len(exact)} invoices open for this amount ({listed})"
                )
            else:
                notes.append(f"{customer} has no invoice open for exactly this amount")
        else:
            notes.append(f'no customer is called "{payer}"')
    if not numbers and not notes:
        notes.append("no invoice number in the reference and no payer")
    elif not numbers:
        notes.insert(0, "no invoice number in the reference")
    note = "; ".join(notes)
    return Match(BankLine.Status.UNMATCHED, customer, None, "", note[:1].upper() + note[1:])


def statement_import(
    *, file_name: str, content: bytes, currency: str, uploaded_by=None
) -> ImportResult:
    """Record the file's new lines with their matches. A bad file raises ValidationError with
    every bad row in `details` (nothing recorded); the same file again records nothing."""
    currency = str(currency)
    digest = hashlib.sha256(content).hexdigest()
    earlier = BankStatement.objects.filter(sha256=digest).first()
    if earlier is not None:
        return ImportResult(earlier, already_imported=True)
    parsed = statement_parse(content, currency=currency)
    if parsed.errors:
        raise ValidationError(
            f"{file_name} was not imported: {len(parsed.errors)} problem(s). Fix the file and "
            "upload it again.",
            details=parsed.errors,
        )
    prints = fingerprints(parsed.lines)
    try:
        return _record(file_name, digest, currency, uploaded_by, parsed, prints)
    except IntegrityError:
        # The same file, or a line of it, uploaded by someone else at the same moment.
        earlier = BankStatement.objects.filter(sha256=digest).first()
        if earlier is not None:
            return ImportResult(earlier, already_imported=True)
        raise Conflict(
            "Another statement with some of these lines was being imported at the same time: "
            "upload this one again (the lines already recorded are skipped)."
        ) from None


def _record(file_name, digest, currency, uploaded_by, parsed, prints) -> ImportResult:
    with transaction.atomic():
        statement = BankStatement.objects.create(
            file_name=file_name[:255],
            sha256=digest,
            currency=currency,
            uploaded_by=uploaded_by,
            row_count=len(parsed.lines) + len(parsed.outgoing),
            outgoing_count=len(parsed.outgoing),
        )
        known = set(
            BankLine.objects.filter(fingerprint__in=prints).values_list("fingerprint", flat=True)
        )
        new = []
        for line, fingerprint in zip(parsed.lines, prints, strict=True):
            if fingerprint in known:
                continue
            match = line_match(
                reference=line.reference, payer=line.payer, amount=line.amount, currency=currency
            )
            new.append(
                BankLine(
                    statement=statement,
                    row=line.row,
                    booked_on=line.booked_on,
                    amount=line.amount,
                    currency=currency,
                    reference=line.reference,
                    payer=line.payer,
                    fingerprint=fingerprint,
                    status=match.status,
                    customer=match.customer,
                    invoice=match.invoice,
                    rule=match.rule,
                    note=match.note[:300],
                )
            )
        BankLine.objects.bulk_create(new)
        statement.new_count = len(new)
        statement.duplicate_count = len(parsed.lines) - len(new)
        statement.save(update_fields=["new_count", "duplicate_count"])
    return ImportResult(statement, outgoing_rows=parsed.outgoing)


def idempotency_key(line: BankLine) -> str:
    return f"bank-line:{line.fingerprint}"


def line_confirm(
    *, line: BankLine, customer: Customer | None = None, invoice: Invoice | None = None, by=None
) -> BankLine:
    """Record the line's payment: to `customer` / `invoice` when given (finance's assignment),
    else the proposed ones. The invoice takes up to its open amount, the rest goes on account;
    without an invoice, the customer's open invoices oldest due first. Once only."""
    with transaction.atomic():
        line = BankLine.objects.select_for_update().get(pk=line.pk)
        if line.status == BankLine.Status.CONFIRMED:
            return line  # confirmed already (a second click): nothing more to record
        if line.status == BankLine.Status.IGNORED:
            raise Conflict(f"This line was ignored ({line.note}): it records no payment.")
        manual = customer is not None or invoice is not None
        if invoice is not None and customer is None:
            customer = invoice.customer
        if not manual:
            customer, invoice = line.customer, line.invoice
        if customer is None:
            raise ValidationError("Choose the customer who paid before confirming this line.")
        if str(customer.currency) != str(line.currency):
            raise ValidationError(
                f"{customer} is billed in {customer.currency}; this line is in {line.currency}: "
                "choose another customer."
            )
        allocations = None
        if invoice is not None:
            if invoice.customer_id != customer.pk:
                raise ValidationError(
                    f"Invoice {invoice} is not {customer}'s: choose one of theirs."
                )
            invoice.refresh_from_db()
            if not _open(invoice, str(line.currency)):
                raise ValidationError(
                    f"Invoice {invoice} has nothing left to pay now: choose another invoice, or "
                    "none (the payment then goes to the oldest open invoices)."
                )
            allocations = {invoice: min(line.amount, invoice.open_amount)}
        payment = payment_record(
            customer=customer,
            amount=line.amount,
            currency=str(line.currency),
            received_on=line.booked_on,
            method=Payment.Method.BANK_TRANSFER,
            reference=line.reference or line.payer,
            allocations=allocations,
            idempotency_key=idempotency_key(line),
            created_by=by,
        )
        line.status = BankLine.Status.CONFIRMED
        line.payment = payment
        line.customer, line.invoice = customer, invoice
        if manual:
            line.rule = BankLine.Rule.MANUAL
        line.decided_by, line.decided_at = by, clock.now()
        line.save(
            update_fields=[
                "status", "payment", "customer", "invoice", "rule", "decided_by", "decided_at"
            ]
        )  # fmt: skip
    return line


def lines_confirm_proposed(*, lines, by=None) -> tuple[list[BankLine], list[str]]:
    """Confirm each proposed line on its own: one that cannot be confirmed (its invoice was paid
    meanwhile) is reported and stays, the others are recorded."""
    done, errors = [], []
    for line in lines.filter(status=BankLine.Status.PROPOSED).order_by("booked_on", "id"):
        try:
            done.append(line_confirm(line=line, by=by))
        except (ValidationError, Conflict) as exc:
            errors.append(
                f"Line {line.row} ({format_money(line.amount, line.currency)}): {exc.message}"
            )
    return done, errors


def line_ignore(*, line: BankLine, reason: str, by=None) -> BankLine:
    """Take a line out of the queue (not a customer's payment: a refund from a supplier, an
    interest credit…), with the reason."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why this line is ignored (for the next person who looks).")
    with transaction.atomic():
        line = BankLine.objects.select_for_update().get(pk=line.pk)
        if line.status == BankLine.Status.CONFIRMED:
            raise Conflict("This line is confirmed: reverse its payment instead.")
        line.status = BankLine.Status.IGNORED
        line.note = reason[:300]
        line.decided_by, line.decided_at = by, clock.now()
        line.save(update_fields=["status", "note", "decided_by", "decided_at"])
    return line
