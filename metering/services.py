"""Event ingestion: validate a whole batch, then insert it once per (customer, transaction_id).

The batch is all or nothing: any invalid event rejects the batch and nothing is stored. Duplicates
(replays, retries, concurrent senders) are not errors: the unique constraint drops them in the
database (INSERT … ON CONFLICT DO NOTHING), and the answer counts new and duplicate events.
"""

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from catalog.models import BillableMetric
from core import clock
from core.errors import ValidationError
from metering.models import Event
from subscriptions.models import Subscription

MAX_BATCH = 10_000
MAX_FUTURE = dt.timedelta(minutes=5)
MAX_PROPERTY_VALUE = Decimal(10) ** 26  # aggregated as numeric(38, 12)
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
            parsed = parse_datetime(value)
            if parsed is None:
                raise ValueError from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError


def _property_problems(metric: BillableMetric, properties: dict) -> list[str]:
    """What is wrong with the property the metric reads (nothing for a count).

    sum, max, latest, weighted_sum read a number (or numeric string), finite and below 10^26 in
    absolute value (negative is allowed: a weighted sum sends changes of level); unique_count
    reads a string or a number (not a boolean, object, list or null).
    """
    field = metric.field_name
    value = properties.get(field)
    if metric.aggregation in NUMERIC_AGGREGATIONS:
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
    elif metric.aggregation == BillableMetric.Aggregation.UNIQUE_COUNT and (
        isinstance(value, bool) or not isinstance(value, str | int | float)
    ):
        return [
            f"Metric '{metric.code}' counts distinct values of properties.{field}: send it "
            "as a string or a number."
        ]
    return []


def _validate(raw_events: list, received_at: dt.datetime) -> list[dict]:
    """Return rows ready to insert, or raise listing every bad event by index."""
    if not isinstance(raw_events, list) or not raw_events:
        raise ValidationError("Send at least one event.")
    if len(raw_events) > MAX_BATCH:
        raise ValidationError(f"A batch holds at most {MAX_BATCH:,} events; split it.")
    sub_ids = {e.get("external_subscription_id") for e in raw_events if isinstance(e, dict)}
    subscriptions = {
        s.external_id: s
        for s in Subscription.objects.filter(external_id__in=[s for s in sub_ids if s])
    }
    codes = {e.get("code") for e in raw_events if isinstance(e, dict)}
    metrics = {m.code: m for m in BillableMetric.objects.filter(code__in=[c for c in codes if c])}
    rows, errors = [], []
    for index, event in enumerate(raw_events):
        problems = []
        if not isinstance(event, dict):
            errors.append({"index": index, "errors": ["An event must be a JSON object."]})
            continue
        txn = event.get("transaction_id")
        if isinstance(txn, bool) or not isinstance(txn, str | int) or str(txn).strip() == "":
            problems.append("transaction_id is required (a unique string per event).")
        sub_id = event.get("external_subscription_id")
        subscription = subscriptions.get(sub_id)
        if not sub_id:
            problems.append("external_subscription_id is required.")
        elif subscription is None:
            problems.append(f"No subscription has external id '{sub_id}'.")
        elif "external_customer_id" in event and event["external_customer_id"] not in (
            None,
            subscription.customer.external_id,
        ):
            problems.append(
                f"Subscription '{sub_id}' does not belong to customer "
                f"'{event['external_customer_id']}'."
            )
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
                "external_subscription_id": sub_id,
            }
        )
    if errors:
        raise ValidationError(
            f"{len(errors)} of {len(raw_events)} events are invalid; nothing was stored. "
            "Fix them and resend the batch.",
            details=errors,
        )
    return rows


def _insert(rows: list[dict], received_at: dt.datetime) -> int:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: counts what was new (PostgreSQL and SQLite)."""
    table = Event._meta.db_table
    columns = (
        "customer_id, subscription_id, transaction_id, code, timestamp, properties, received_at"
    )
    placeholders = "(" + ", ".join(["%s"] * 7) + ")"
    created = 0
    chunk = 500  # SQLite allows 32k bound parameters per statement
    ops = connection.ops
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
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
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(part))} "
                "ON CONFLICT (customer_id, transaction_id) DO NOTHING RETURNING id",
                params,
            )
            created += len(cursor.fetchall())
    return created


@transaction.atomic
def events_ingest(*, raw_events: list) -> IngestResult:
    received_at = clock.now()
    rows = _validate(raw_events, received_at)
    created = _insert(rows, received_at)
    return IngestResult(received=len(rows), created=created, events=rows)
