"""manage.py import_events: backfill NDJSON/CSV files through the ingestion service, in batches."""

import datetime as dt
import gzip
import json
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from catalog.models import Charge
from metering.models import Event
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    TokensMetricFactory,
    subscribe,
)

NOW = "2026-02-14 12:00Z"
FEB_10 = dt.datetime(2026, 2, 10, 9, tzinfo=dt.UTC)
FEB_10_UNIX = 1770714000

pytestmark = pytest.mark.usefixtures("frozen", "subscription")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def subscription(db):
    """acme's sub_acme: api_calls (count) and tokens (sum of properties.tokens), in arrears."""
    plan = PlanFactory()
    for position, metric in enumerate([MetricFactory(), TokensMetricFactory()]):
        ChargeFactory(
            plan=plan,
            name=metric.name,
            metric=metric,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal("0.002"),
            default_quantity=Decimal("0"),
            position=position,
        )
    return subscribe(customer=CustomerFactory(external_id="acme"), plan=plan, start="2026-01-15")


def call(txn, **fields) -> dict:
    return {
        "transaction_id": txn,
        "external_subscription_id": "sub_acme",
        "code": "api_calls",
        "timestamp": FEB_10_UNIX,
        **fields,
    }


def ndjson(path, *lines) -> str:
    path.write_text("".join(f"{json.dumps(x) if not isinstance(x, str) else x}\n" for x in lines))
    return str(path)


def run(*args) -> str:
    out = StringIO()
    call_command("import_events", *args, stdout=out)
    return out.getvalue()


def fail(*args) -> tuple[str, str]:
    """(error message, stdout) of a run that must stop."""
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("import_events", *args, stdout=out)
    return str(raised.value), out.getvalue()


# --- NDJSON -----------------------------------------------------------------------------------


def test_ndjson_import_then_a_rerun_counts_everything_as_duplicates(tmp_path):
    name = ndjson(
        tmp_path / "events.ndjson",
        call("e1"),
        {"event": call("e2", timestamp="2026-02-10T09:00:00Z")},  # the API's envelope
        "",  # blank lines are skipped
        call("e3", code="tokens", properties={"tokens": 1250}),
        call("e4", external_customer_id="acme"),
        call("e5"),
    )

    assert run(name, "--batch-size", "2") == f"{name}: read 5, created 5, duplicates 0\n"
    assert run(name) == f"{name}: read 5, created 0, duplicates 5\n"

    assert Event.objects.count() == 5
    assert set(Event.objects.values_list("timestamp", flat=True)) == {FEB_10}
    assert Event.objects.get(transaction_id="e3").properties == {"tokens": 1250}


def test_jsonl_and_gzip_are_read_and_several_files_are_totalled(tmp_path):
    first = ndjson(tmp_path / "a.jsonl", call("e1"), call("e2"))
    second = tmp_path / "b.ndjson.gz"
    with gzip.open(second, "wt") as stream:
        stream.write(json.dumps(call("e2")) + "\n" + json.dumps(call("e3")) + "\n")

    assert run(first, str(second)) == (
        f"{first}: read 2, created 2, duplicates 0\n"
        f"{second}: read 2, created 1, duplicates 1\n"
        "All 2 files: read 4, created 3, duplicates 1\n"
    )


def test_a_bad_line_stops_with_its_number_and_its_batch_is_not_stored(tmp_path):
    path = tmp_path / "events.ndjson"
    good = [call(f"e{n}") for n in range(1, 6)]
    bad = [*good[:3], call("e4", external_subscription_id="sub_nope"), good[4]]

    message, out = fail(ndjson(path, *bad), "--batch-size", "2")

    assert message.splitlines()[:2] == [
        f"{path}: 1 of the 2 events in lines 3–4 are invalid:",
        "  line 4: No subscription has external id 'sub_nope'.",
    ]
    assert "the batches before it are stored: read 2, created 2, duplicates 0" in message
    assert "The batch of lines 3–4 was NOT stored, nor anything after it" in message
    assert "run the same command again" in message
    assert out == f"{path}: read 2, created 2, duplicates 0; stopped: lines 3–4 not stored\n"
    assert sorted(Event.objects.values_list("transaction_id", flat=True)) == ["e1", "e2"]

    # Fixed, the same command stores the rest; what was stored counts as duplicates.
    assert run(ndjson(path, *good), "--batch-size", "2") == (
        f"{path}: read 5, created 3, duplicates 2\n"
    )
    assert Event.objects.count() == 5


def test_every_problem_of_the_batch_is_listed_at_once_and_nothing_is_stored(tmp_path):
    path = ndjson(
        tmp_path / "events.ndjson",
        call("e1"),
        '{"transaction_id": "e2",',
        call("e3", code="tokens", properties={"tokens": "lots"}),
        [call("e4")],
        call("e5", timestamp=None),
        call("e6"),
    )

    message, _ = fail(path)

    assert message.splitlines()[:6] == [
        f"{path}: 4 of the 6 events in lines 1–6 are invalid:",
        "  line 2: Not valid JSON: Expecting property name enclosed in double quotes (column 25).",
        "  line 3: Metric 'tokens' sums properties.tokens: send it as a number.",
        '  line 4: A line must hold one event: {...} or {"event": {...}}.',
        "  line 5: timestamp is required when importing (the time of the import is not when "
        "the usage happened).",
        "The batch of lines 1–6 was NOT stored, nor anything after it. Fix the file and run the "
        "same command again: events already stored are counted as duplicates, not stored twice.",
    ]
    assert Event.objects.count() == 0


def test_a_later_file_failing_leaves_the_earlier_files_stored(tmp_path):
    first = ndjson(tmp_path / "a.ndjson", call("e1"))
    second = ndjson(tmp_path / "b.ndjson", call("e2", code="nope"))

    message, out = fail(first, second)

    assert "line 1: No billable metric has code 'nope'." in message
    assert f"The files before it are stored: {first}." in message
    assert out == (
        f"{first}: read 1, created 1, duplicates 0\n"
        f"{second}: read 0, created 0, duplicates 0; stopped: line 1 not stored\n"
    )
    assert list(Event.objects.values_list("transaction_id", flat=True)) == ["e1"]


# --- CSV --------------------------------------------------------------------------------------


def test_csv_import_with_properties(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "transaction_id,external_subscription_id,external_customer_id,code,timestamp,"
        "properties.tokens,property_region\n"
        f"c1,sub_acme,acme,tokens,{FEB_10_UNIX},1250,eu\n"
        "c2,sub_acme,,tokens,2026-02-10T09:00:00Z,12.5,\n"
        f"c3,sub_acme,,api_calls,{FEB_10_UNIX},,us\n"
        "\n"
        '"c4",sub_acme,acme,api_calls,2026-02-10T09:00:00Z,,"us, east"\n',
        encoding="utf-8-sig",  # a byte order mark, as spreadsheets write
    )

    assert run(str(path)) == f"{path}: read 4, created 4, duplicates 0\n"

    stored = {e.transaction_id: e for e in Event.objects.all()}
    assert stored["c1"].properties == {"tokens": "1250", "region": "eu"}  # numbers stay text
    assert stored["c2"].properties == {"tokens": "12.5"}  # an empty cell is no property
    assert stored["c3"].properties == {"region": "us"}
    assert stored["c4"].properties == {"region": "us, east"}
    assert {e.timestamp for e in stored.values()} == {FEB_10}
    assert run(str(path)) == f"{path}: read 4, created 0, duplicates 4\n"


def test_a_bad_csv_row_is_named_by_its_line_in_the_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "transaction_id,external_subscription_id,code,timestamp,property_tokens\n"
        f"c1,sub_acme,tokens,{FEB_10_UNIX},10\n"
        f"c2,sub_acme,tokens,{FEB_10_UNIX},ten\n"
        f"c3,sub_acme,tokens,{FEB_10_UNIX}\n"
        f"c4,sub_acme,tokens,,4\n"
    )

    message, _ = fail(str(path))

    assert message.splitlines()[:4] == [
        f"{path}: 3 of the 4 events in lines 2–5 are invalid:",
        "  line 3: Metric 'tokens' sums properties.tokens: send it as a number.",
        "  line 4: The row has 4 cells; the header has 5.",
        "  line 5: timestamp is required when importing (the time of the import is not when "
        "the usage happened).",
    ]
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (
            "transaction_id,external_subscription_id,code,timestamp,tokens",
            "unknown column(s) 'tokens'. The columns are transaction_id, "
            "external_subscription_id, external_customer_id, code, timestamp, and properties "
            "named properties.<name> or property_<name>. Nothing from this file was imported.",
        ),
        (
            "transaction_id,external_subscription_id,code",
            "the header lacks timestamp. Nothing from this file was imported.",
        ),
        (
            "transaction_id,code,timestamp,properties.tokens,property_tokens",
            "column(s) 'properties.tokens' appear more than once. Nothing from this file was "
            "imported.",
        ),
    ],
)
def test_a_bad_csv_header_stops_before_anything_is_stored(tmp_path, header, error):
    path = tmp_path / "events.csv"
    path.write_text(f"{header}\nc1,sub_acme,api_calls,{FEB_10_UNIX},1\n")

    message, _ = fail(str(path))

    assert message == f"{path}: {error}"
    assert Event.objects.count() == 0


# --- format, options --------------------------------------------------------------------------


def test_an_unknown_format_is_refused_before_anything_is_read(tmp_path):
    first = ndjson(tmp_path / "a.ndjson", call("e1"))
    unknown = ndjson(tmp_path / "events.txt", call("e2"))

    message, _ = fail(first, unknown)

    assert message == (
        f"{unknown}: cannot tell the format from the extension (expected .ndjson, .jsonl or "
        ".csv, optionally .gz). Pass --format ndjson or --format csv. Nothing was imported."
    )
    assert Event.objects.count() == 0

    message, _ = fail(unknown, "--format", "xml")
    assert "argument --format: invalid choice: 'xml' (choose from" in message

    assert run(unknown, "--format", "ndjson") == f"{unknown}: read 1, created 1, duplicates 0\n"


def test_a_missing_file_and_a_bad_batch_size_are_refused(tmp_path):
    assert fail(str(tmp_path / "nope.ndjson"))[0] == (
        f"{tmp_path / 'nope.ndjson'}: no such file. Nothing was imported."
    )
    name = ndjson(tmp_path / "a.ndjson", call("e1"))
    for size in ("0", "10001"):
        assert fail(name, "--batch-size", size)[0] == "--batch-size must be between 1 and 10,000."
    assert Event.objects.count() == 0


def test_allow_late_accepts_events_older_than_the_lateness_window(tmp_path, settings):
    settings.EVENT_LATENESS_DAYS = 35
    old = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)  # 43 days before NOW
    name = ndjson(tmp_path / "old.ndjson", call("e1", timestamp=old.isoformat()))

    message, _ = fail(name)
    assert "line 1: timestamp is more than 35 days old" in message
    assert Event.objects.count() == 0

    assert run(name, "--allow-late") == f"{name}: read 1, created 1, duplicates 0\n"
    assert Event.objects.get().timestamp == old


def test_hostile_lines_are_named_and_nothing_of_their_batch_is_stored(tmp_path):
    # json.loads reads NaN and Infinity, which the API's parser refuses; a line nested deeper
    # than Python's recursion limit raises RecursionError, not JSONDecodeError
    path = ndjson(
        tmp_path / "hostile.ndjson",
        call("e1"),
        '{"a":' * 5000 + "1" + "}" * 5000,
        json.dumps(call("e3", properties={"k": "N"})).replace('"N"', "Infinity"),
        call("e4\x00"),
        call("e5", properties={"k" * 101: 1}),
    )

    message, _ = fail(path)

    assert message.splitlines()[:5] == [
        f"{path}: 4 of the 5 events in lines 1–5 are invalid:",
        "  line 2: Not valid JSON: nested too deeply or too long.",
        "  line 3: properties: numbers in properties must be finite.",
        "  line 4: transaction_id contains a NUL character (\\u0000).",
        "  line 5: properties: property keys are at most 100 characters.",
    ]
    assert Event.objects.count() == 0
