"""Event ingestion: validate a whole batch, then insert it once per (customer, transaction_id).

The batch is all or nothing: any invalid event rejects the batch and nothing is stored. Duplicates
(replays, retries, concurrent senders) are not errors: the unique constraint drops them in the
database (INSERT … ON CONFLICT DO NOTHING), and the answer counts new and duplicate events.
"""

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from catalog.models import BillableMetric
from core import clock
from core.errors import ValidationError
from core.money import plain
from metering.models import Event
from metering.rollups import rollups_add
from subscriptions.models import Subscription

MAX_BATCH = 10_000
MAX_FUTURE = dt.timedelta(minutes=5)
MAX_PROPERTY_VALUE = Decimal(10) ** 26  # aggregated as numeric(38, 12)
MAX_PROPERTY_INT = 10**26
# A number sent as a string: ASCII digits only. Python's Decimal also reads "1_000", " 5 " and
# non-ASCII digits ("١٢"), which PostgreSQL refuses when it aggregates (the whole period fails)
# and SQLite misreads ("1_000" as 1).
NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Aggregations that read a number, and how the refusal names what they do with it.
NUMERIC_AGGREGATIONS = {
    BillableMetric.Aggregation.SUM: "sums",
    BillableMetric.Aggregation.MAX: "takes the maximum of",
    BillableMetric.Aggregation.LATEST: "takes the latest",
    BillableMetric.Aggregation.WEIGHTED_SUM: "adds up changes of",
}


# What one event may carry (see docs/metering.md, "Limits"): the columns' lengths, and bounds that
# keep a hostile or broken sender from storing what the database, the aggregations or the JSON
# encoders would refuse later (NUL, lone surrogates, infinities, deep or huge documents).
MAX_TRANSACTION_ID = 255  # Event.transaction_id
MAX_CODE = 100  # Event.code
MAX_EXTERNAL_ID = 255
MAX_PROPERTIES_BYTES = 8 * 1024  # serialized as compact UTF-8 JSON
MAX_PROPERTIES_DEPTH = 8  # levels of objects and arrays, counting `properties` itself
MAX_PROPERTY_KEY = 100


@dataclass(frozen=True)
class IngestResult:
    received: int
    created: int
    events: list[dict]

    @property
    def duplicates(self) -> int:
        return self.received - self.created


def _parse_timestamp(value, received_at: dt.datetime) -> dt.datetime:
    if value is None or value == "":
        return received_at
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    if isinstance(value, str):
        try:
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        except ValueError:
            try:  # the C parser first; Django's regex parser for the forms it does not read
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                parsed = parse_datetime(value)
            if parsed is None:
                raise ValueError from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError


def _property_problems(metric: BillableMetric, properties: dict) -> list[str]:
    """What is wrong with the property the metric reads (nothing for a count).

    sum, max, latest, weighted_sum read a number (or numeric string), finite and below 10^26 in
    absolute value, and not below zero unless the metric accepts negative values (finance's
    choice, for refund-style corrections; a weighted sum always does: it sends changes of level);
    unique_count reads a string or a number (not a boolean, object, list or null).
    """
    field = metric.field_name
    value = properties.get(field)
    if metric.aggregation in NUMERIC_AGGREGATIONS:
        if type(value) is int and 0 <= value < MAX_PROPERTY_INT:
            return []  # the common case, without building a Decimal
        try:
            if value is None or isinstance(value, bool):
                raise InvalidOperation
            if isinstance(value, str) and not NUMERIC_TEXT.fullmatch(value):
                raise InvalidOperation
            number = Decimal(str(value))
            if not number.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            verb = NUMERIC_AGGREGATIONS[metric.aggregation]
            return [f"Metric '{metric.code}' {verb} properties.{field}: send it as a number."]
        if abs(number) >= MAX_PROPERTY_VALUE:
            return [f"properties.{field} is too large: values must stay below 10^26."]
        if number < 0 and not metric.takes_negative_values:
            return [
                f"Metric '{metric.code}' does not accept negative values: properties.{field} is "
                f"{plain(number)}. Send 0 or more, or ask finance to mark it as accepting negative "
                "values (refund-style corrections)."
            ]
    elif metric.aggregation == BillableMetric.Aggregation.UNIQUE_COUNT and (
        isinstance(value, bool) or not isinstance(value, str | int | float)
    ):
        return [
            f"Metric '{metric.code}' counts distinct values of properties.{field}: send it "
            "as a string or a number."
        ]
    return []


def _text_problem(value: str) -> str | None:
    """Why a string cannot be stored: PostgreSQL refuses NUL in text and jsonb, and no UTF-8
    encoder takes a lone surrogate ("\\ud800", which JSON can spell)."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"
    return None


class _Unstorable(Exception):
    """A value in properties that cannot be stored; the message says what."""


def _json_bound(value, depth: int) -> int:
    """An upper bound of `value`'s size as compact UTF-8 JSON (no string escape is longer than 6
    bytes a character), so that the exact size is measured only for documents near the limit.
    Raises _Unstorable for what cannot be stored. Recursion is bounded by MAX_PROPERTIES_DEPTH."""
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem:
            raise _Unstorable(f"a property value {problem}")
        return 2 + 6 * len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return 20 if -(10**18) < value < 10**18 else len(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unstorable("numbers in properties must be finite")
        return 24
    if not isinstance(value, dict | list):
        raise _Unstorable("properties hold only JSON values")
    if depth > MAX_PROPERTIES_DEPTH:
        raise _Unstorable(
            f"nested too deeply (at most {MAX_PROPERTIES_DEPTH} levels of objects and arrays)"
        )
    size = 2
    if isinstance(value, list):
        for item in value:
            size += 1 + _json_bound(item, depth + 1)
        return size
    for key, item in value.items():
        if not isinstance(key, str):  # JSON keys are strings; a Python caller's may not be
            raise _Unstorable("property keys must be strings")
        if len(key) > MAX_PROPERTY_KEY:
            raise _Unstorable(f"property keys are at most {MAX_PROPERTY_KEY} characters")
        problem = _text_problem(key)
        if problem:
            raise _Unstorable(f"a property key {problem}")
        size += 4 + 6 * len(key) + _json_bound(item, depth + 1)
    return size


def _field_problem(event: dict, name: str, max_length: int, *, integer: bool = False) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if integer:  # transaction_id: its other types are refused as missing, in _validate
        if type(value) is int:
            value = str(value)
        elif not isinstance(value, str):
            return None
    if not isinstance(value, str):
        return f"{name} must be a string."
    if len(value) > max_length:
        return f"{name} is longer than {max_length} characters."
    problem = _text_problem(value)
    return f"{name} {problem}." if problem else None


def _bounds_problems(event: dict) -> list[str]:
    """What one event may carry, whatever it is for: the types and lengths of its fields, and
    properties that every store and encoder accepts (no NUL, no lone surrogate, finite numbers,
    at most MAX_PROPERTIES_DEPTH levels and MAX_PROPERTIES_BYTES). An event with such a problem
    is refused before any of its values reaches a query."""
    problems = [
        p
        for p in (
            _field_problem(event, "transaction_id", MAX_TRANSACTION_ID, integer=True),
            _field_problem(event, "code", MAX_CODE),
            _field_problem(event, "external_subscription_id", MAX_EXTERNAL_ID),
            _field_problem(event, "external_customer_id", MAX_EXTERNAL_ID),
        )
        if p
    ]
    properties = event.get("properties")
    if isinstance(properties, dict) and properties:
        try:
            size = _json_bound(properties, 1)
        except _Unstorable as exc:
            problems.append(f"properties: {exc}.")
        else:
            if size > MAX_PROPERTIES_BYTES:  # near or over the limit: measure
                size = len(
                    json.dumps(properties, ensure_ascii=False, separators=(",", ":")).encode()
                )
            if size > MAX_PROPERTIES_BYTES:
                problems.append(
                    f"properties are {size:,} bytes as JSON: at most {MAX_PROPERTIES_BYTES:,}."
                )
    return problems


def _subscriptions_of(events: list[dict]) -> tuple[dict, dict]:
    """The batch's subscriptions by external id, and for events that name only their customer,
    each such customer's active subscriptions (two queries for the whole batch). The events have
    passed _bounds_problems: their ids are strings or None."""
    sub_ids = {e.get("external_subscription_id") for e in events}
    by_id = {
        s.external_id: s
        for s in Subscription.objects.select_related("customer").filter(
            external_id__in=[s for s in sub_ids if s]
        )
    }
    customer_ids = {
        e.get("external_customer_id") for e in events if not e.get("external_subscription_id")
    }
    by_customer: dict[str, list[Subscription]] = {}
    for s in Subscription.objects.select_related("customer").filter(
        customer__external_id__in=[c for c in customer_ids if c],
        status=Subscription.Status.ACTIVE,
    ):
        by_customer.setdefault(s.customer.external_id, []).append(s)
    return by_id, by_customer


def _resolve(event: dict, by_id: dict, by_customer: dict, problems: list) -> Subscription | None:
    sub_id = event.get("external_subscription_id")
    customer_id = event.get("external_customer_id")
    if sub_id:
        subscription = by_id.get(sub_id)
        if subscription is None:
            problems.append(f"No subscription has external id '{sub_id}'.")
        elif customer_id not in (None, subscription.customer.external_id):
            problems.append(f"Subscription '{sub_id}' does not belong to customer '{customer_id}'.")
        return subscription
    if not customer_id:
        problems.append("external_subscription_id (or external_customer_id) is required.")
        return None
    candidates = by_customer.get(customer_id, [])
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        problems.append(f"No customer with external id '{customer_id}' has an active subscription.")
    else:
        problems.append(
            f"Customer '{customer_id}' has {len(candidates)} active subscriptions: send "
            "external_subscription_id to say which one the event is for."
        )
    return None


def _validate(raw_events: list, received_at: dt.datetime, max_lateness: dt.timedelta) -> list[dict]:
    """Return rows ready to insert, or raise listing every bad event by index."""
    if not isinstance(raw_events, list) or not raw_events:
        raise ValidationError("Send at least one event.")
    if len(raw_events) > MAX_BATCH:
        raise ValidationError(f"A batch holds at most {MAX_BATCH:,} events; split it.")
    bounds = [_bounds_problems(e) if isinstance(e, dict) else None for e in raw_events]
    sound = [e for e, b in zip(raw_events, bounds, strict=True) if b == []]
    subscriptions, by_customer = _subscriptions_of(sound)
    codes = {e.get("code") for e in sound}
    metrics = {m.code: m for m in BillableMetric.objects.filter(code__in=[c for c in codes if c])}
    rows, errors = [], []
    for index, event in enumerate(raw_events):
        problems = []
        if not isinstance(event, dict):
            errors.append({"index": index, "errors": ["An event must be a JSON object."]})
            continue
        if bounds[index]:
            errors.append({"index": index, "errors": bounds[index]})
            continue
        txn = event.get("transaction_id")
        if isinstance(txn, bool) or not isinstance(txn, str | int) or str(txn).strip() == "":
            problems.append("transaction_id is required (a unique string per event).")
        subscription = _resolve(event, subscriptions, by_customer, problems)
        code = event.get("code")
        metric = metrics.get(code)
        if not code:
            problems.append("code is required (the billable metric's code).")
        elif metric is None:
            problems.append(f"No billable metric has code '{code}'.")
        properties = event.get("properties") or {}
        if not isinstance(properties, dict):
            problems.append("properties must be a JSON object.")
            properties = {}
        if metric is not None:
            problems += _property_problems(metric, properties)
        try:
            timestamp = _parse_timestamp(event.get("timestamp"), received_at)
        except (ValueError, OverflowError, OSError):
            problems.append("timestamp must be Unix seconds or an ISO 8601 date-time.")
        else:
            if timestamp > received_at + MAX_FUTURE:
                problems.append("timestamp is more than 5 minutes in the future.")
            elif timestamp < received_at - max_lateness:
                problems.append(
                    f"timestamp is more than {max_lateness.days} days old: usage that late is "
                    "no longer accepted (ask finance for a manual adjustment)."
                )
        if problems:
            errors.append({"index": index, "errors": problems})
            continue
        rows.append(
            {
                "customer_id": subscription.customer_id,
                "subscription_id": subscription.pk,
                "transaction_id": str(txn),
                "code": code,
                "timestamp": timestamp,
                "properties": properties,
                "external_subscription_id": subscription.external_id,
                "metric": metric,
            }
        )
    if errors:
        raise ValidationError(
            f"{len(errors)} of {len(raw_events)} events are invalid; nothing was stored. "
            "Fix them and resend the batch.",
            details=errors,
        )
    return rows


def _insert(rows: list[dict], received_at: dt.datetime) -> list[dict]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: the rows that were new (the others were stored
    before, by a replay, a retry or a concurrent sender)."""
    # Insert in key order: two concurrent batches with the same keys in opposite orders would
    # otherwise wait on each other's unique-index entries (a deadlock).
    ordered = sorted(rows, key=lambda r: (r["customer_id"], r["transaction_id"]))
    if connection.vendor == "postgresql":
        new = _insert_postgresql(ordered, received_at)
    else:
        new = _insert_portable(ordered, received_at)
    created = []
    for row in rows:  # a key repeated within the batch is new once
        key = (row["customer_id"], row["transaction_id"])
        if key in new:
            new.discard(key)
            created.append(row)
    return created


COLUMNS = "customer_id, subscription_id, transaction_id, code, timestamp, properties, received_at"


def _insert_postgresql(rows: list[dict], received_at: dt.datetime) -> set:
    """One statement for the whole batch, sent as one JSON document read back as rows (cheaper
    to bind than one array per column)."""
    batch = json.dumps(
        [
            {
                "c": r["customer_id"],
                "s": r["subscription_id"],
                "t": r["transaction_id"],
                "k": r["code"],
                "ts": r["timestamp"].isoformat(),
                "p": r["properties"],
            }
            for r in rows
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} ({COLUMNS}) "
            "SELECT c, s, t, k, ts, p, %s FROM jsonb_to_recordset(%s::jsonb) "
            "AS u(c bigint, s bigint, t varchar, k varchar, ts timestamptz, p jsonb) "
            "ON CONFLICT (customer_id, transaction_id) DO NOTHING "
            "RETURNING customer_id, transaction_id",
            [received_at, batch],
        )
        return set(cursor.fetchall())


def _insert_portable(rows: list[dict], received_at: dt.datetime) -> set:
    """Multi-row VALUES in chunks (SQLite allows 32,766 bound parameters per statement)."""
    placeholders = "(" + ", ".join(["%s"] * 7) + ")"
    ops, new = connection.ops, set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 4000):
            part = rows[start : start + 4000]
            params = []
            for r in part:
                params += [
                    r["customer_id"],
                    r["subscription_id"],
                    r["transaction_id"],
                    r["code"],
                    ops.adapt_datetimefield_value(r["timestamp"]),
                    json.dumps(r["properties"]),
                    ops.adapt_datetimefield_value(received_at),
                ]
            cursor.execute(
                f"INSERT INTO {Event._meta.db_table} ({COLUMNS}) VALUES "
                f"{', '.join([placeholders] * len(part))} "
                "ON CONFLICT (customer_id, transaction_id) DO NOTHING "
                "RETURNING customer_id, transaction_id",
                params,
            )
            new.update(tuple(r) for r in cursor.fetchall())
    return new


@transaction.atomic
def events_ingest(*, raw_events: list, max_lateness: dt.timedelta | None = None) -> IngestResult:
    """Validate the batch as a whole, store each event once, and keep the usage rollups current.

    `max_lateness` (default: settings.EVENT_LATENESS_DAYS) bounds how old a timestamp may be;
    a backfill passes a longer one.
    """
    received_at = clock.now()
    if max_lateness is None:
        max_lateness = dt.timedelta(days=settings.EVENT_LATENESS_DAYS)
    rows = _validate(raw_events, received_at, max_lateness)
    new = _insert(rows, received_at)
    rollups_add(new)
    return IngestResult(received=len(rows), created=len(new), events=rows)
