"""Backfill usage events from NDJSON or CSV files through the ingestion service, in batches."""

import csv
import datetime as dt
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.errors import ValidationError
from metering import services

FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
CSV_COLUMNS = (
    "transaction_id",
    "external_subscription_id",
    "external_customer_id",
    "code",
    "timestamp",
)
PROPERTY_PREFIXES = ("properties.", "property_")
NOT_AN_EVENT = 'A line must hold one event: {...} or {"event": {...}}.'
MAX_LISTED = 100  # problems listed for one batch; the rest are counted
ANY_AGE = dt.timedelta(days=100 * 365)  # --allow-late: a lateness no backfill reaches


class _DryRun(Exception):
    """Raised to roll back a validation-only pass of the ingestion service."""


@dataclass
class Tally:
    read: int = 0
    created: int = 0
    duplicates: int = 0

    def add(self, other: "Tally") -> None:
        self.read += other.read
        self.created += other.created
        self.duplicates += other.duplicates

    def __str__(self) -> str:
        return f"read {self.read:,}, created {self.created:,}, duplicates {self.duplicates:,}"


@dataclass
class Record:
    """One event read from a file: where it is, what it holds, what is already wrong with it."""

    line: int
    event: dict | None
    problems: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Backfill usage events from NDJSON or CSV files through the same validation and "
        "deduplication as the events API. Files are read as a stream and sent in batches; each "
        "batch is stored all or nothing. On an invalid batch the command stops with the file, "
        "line numbers and reasons: that batch is not stored, but batches (and files) before it "
        "stay stored. Fix the lines and run the same command again: events already stored are "
        "counted as duplicates and never stored twice. NDJSON: one event per line, bare or as "
        '{"event": {...}}. CSV: a header with transaction_id, external_subscription_id, '
        "external_customer_id (optional), code, timestamp, and properties as "
        "properties.<name> or property_<name> columns. Every event needs a timestamp. "
        "Files ending in .gz are decompressed as they are read."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--format",
            choices=["ndjson", "csv"],
            help="The files' format (default: from the extension: .ndjson/.jsonl or .csv).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=services.MAX_BATCH,
            help=f"Events per batch, 1 to {services.MAX_BATCH:,} (default: %(default)s).",
        )
        parser.add_argument(
            "--allow-late",
            action="store_true",
            help=(
                "Accept timestamps older than the lateness window (EVENT_LATENESS_DAYS). Events "
                "of a period whose late-usage window has closed are stored but no invoice bills "
                "them: use this to load history, or periods that are not billed yet."
            ),
        )

    def handle(self, *args, files, format, batch_size, allow_late, **options):
        if not 1 <= batch_size <= services.MAX_BATCH:
            raise CommandError(f"--batch-size must be between 1 and {services.MAX_BATCH:,}.")
        paths = [Path(name) for name in files]
        formats = {path: format or self._guess_format(path) for path in paths}
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file. Nothing was imported.")
        self.max_lateness = ANY_AGE if allow_late else None
        self.verbosity = options["verbosity"]
        total = Tally()
        for number, path in enumerate(paths):
            tally = self._import_file(path, formats[path], batch_size, earlier_files=paths[:number])
            self.stdout.write(f"{path}: {tally}")
            total.add(tally)
        if len(paths) > 1:
            self.stdout.write(f"All {len(paths)} files: {total}")

    @staticmethod
    def _guess_format(path: Path) -> str:
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes.pop()
        guessed = FORMATS.get(suffixes[-1]) if suffixes else None
        if guessed is None:
            raise CommandError(
                f"{path}: cannot tell the format from the extension (expected .ndjson, .jsonl or "
                ".csv, optionally .gz). Pass --format ndjson or --format csv. Nothing was imported."
            )
        return guessed

    # --- one file ---------------------------------------------------------------------------

    def _import_file(self, path: Path, fmt: str, batch_size: int, earlier_files) -> Tally:
        tally = Tally()
        records = self._ndjson_records if fmt == "ndjson" else self._csv_records
        batch: list[Record] = []
        try:
            with _open(path, "utf-8-sig") as stream:
                for record in records(stream, path):
                    batch.append(record)
                    if len(batch) == batch_size:
                        self._send(path, batch, tally, earlier_files)
                        batch = []
            if batch:
                self._send(path, batch, tally, earlier_files)
        except UnicodeDecodeError as exc:
            after = batch[-1].line if batch else None
            where = f"after line {after}" if after else "in its first lines"
            self._fail(
                path,
                tally,
                earlier_files,
                f"{path}: the file is not UTF-8 text ({where}: {exc.reason}).",
                unsaved=batch,
            )
        return tally

    def _send(self, path: Path, batch: list[Record], tally: Tally, earlier_files) -> None:
        """Ingest one batch, or stop the command listing every problem in it by line."""
        problems = {r.line: list(r.problems) for r in batch if r.problems}
        sound = [r for r in batch if not r.problems]
        result = None
        try:
            if problems:
                # Ask the service about the other lines too (and store nothing), so that one
                # run lists every problem of the batch.
                if sound:
                    with transaction.atomic():
                        self._ingest([r.event for r in sound])
                        raise _DryRun
            else:
                result = self._ingest([r.event for r in batch])
        except _DryRun:
            pass
        except ValidationError as exc:
            if isinstance(exc.details, list):  # [{"index", "errors"}], indexes into `sound`
                for detail in exc.details:
                    problems.setdefault(sound[detail["index"]].line, []).extend(detail["errors"])
            else:  # about the batch as a whole
                problems.setdefault(sound[0].line, []).append(exc.message)
        if result is None:
            lines = [f"  line {n}: {' '.join(errors)}" for n, errors in sorted(problems.items())]
            if len(lines) > MAX_LISTED:
                lines = lines[:MAX_LISTED] + [f"  … and {len(lines) - MAX_LISTED:,} more lines"]
            message = (
                f"{path}: {len(problems):,} of the {len(batch):,} events in "
                f"{_line_range(batch)} are invalid:\n" + "\n".join(lines)
            )
            self._fail(path, tally, earlier_files, message, unsaved=batch)
        tally.add(Tally(read=len(batch), created=result.created, duplicates=result.duplicates))
        if self.verbosity >= 2:
            self.stdout.write(f"{path}: up to line {batch[-1].line}: {tally}")

    def _ingest(self, events: list[dict]):
        if self.max_lateness is None:
            return services.events_ingest(raw_events=events)
        return services.events_ingest(raw_events=events, max_lateness=self.max_lateness)

    def _fail(self, path: Path, tally: Tally, earlier_files, message: str, unsaved) -> None:
        """Say what is stored and what is not, then stop with a non-zero exit."""
        stored = []
        if earlier_files:
            stored.append(f"The files before it are stored: {', '.join(map(str, earlier_files))}.")
        if tally.read:
            stored.append(f"From {path}, the batches before it are stored: {tally}.")
        if unsaved:
            lines = _line_range(unsaved)
            stopped = f"The batch of {lines} was NOT stored"
        else:
            lines = "the lines after those stored"
            stopped = "The lines after those stored were NOT stored"
        stored.append(
            f"{stopped}, nor anything after it. Fix the file and run the same command again: "
            "events already stored are counted as duplicates, not stored twice."
        )
        self.stdout.write(f"{path}: {tally}; stopped: {lines} not stored")
        raise CommandError(message + "\n" + " ".join(stored))

    # --- readers: a stream of Records, never the whole file -----------------------------------

    @staticmethod
    def _ndjson_records(stream, path: Path) -> Iterator[Record]:
        for number, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                event = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield Record(number, None, [f"Not valid JSON: {exc.msg} (column {exc.colno})."])
                continue
            except (RecursionError, ValueError):  # nested too deeply, an integer too long
                yield Record(number, None, ["Not valid JSON: nested too deeply or too long."])
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), dict):
                event = event["event"]  # the API's {"event": {...}} envelope
            if not isinstance(event, dict):
                yield Record(number, None, [NOT_AN_EVENT])
                continue
            yield _with_timestamp_check(Record(number, event))

    @staticmethod
    def _csv_records(stream, path: Path) -> Iterator[Record]:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        columns = _csv_columns(path, header)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            line = reader.line_num
            if len(cells) != len(header):
                yield Record(
                    line, None, [f"The row has {len(cells)} cells; the header has {len(header)}."]
                )
                continue
            event, properties = {}, {}
            for (kind, name), cell in zip(columns, cells, strict=True):
                if cell == "":
                    continue  # an empty cell is an absent field
                (properties if kind == "property" else event)[name] = cell
            if properties:
                event["properties"] = properties
            yield _with_timestamp_check(Record(line, event))


def _line_range(records: list[Record]) -> str:
    first, last = records[0].line, records[-1].line
    return f"line {first}" if first == last else f"lines {first}–{last}"


def _open(path: Path, encoding: str):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")  # noqa: SIM115 (closed by the caller)


def _csv_columns(path: Path, header: list[str]) -> list[tuple[str, str]]:
    """(kind, name) per column: ("field", "code") or ("property", "tokens")."""
    columns, unknown = [], []
    for name in header:
        prefix = next((p for p in PROPERTY_PREFIXES if name.startswith(p)), None)
        if name in CSV_COLUMNS:
            columns.append(("field", name))
        elif prefix and name[len(prefix) :]:
            columns.append(("property", name[len(prefix) :]))
        else:
            unknown.append(name)
    if unknown:
        raise CommandError(
            f"{path}: unknown column(s) {', '.join(map(repr, unknown))}. The columns are "
            f"{', '.join(CSV_COLUMNS)}, and properties named properties.<name> or "
            "property_<name>. Nothing from this file was imported."
        )
    names = [name for kind, name in columns if kind == "field"]
    labels = [f"properties.{name}" if kind == "property" else name for kind, name in columns]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise CommandError(
            f"{path}: column(s) {', '.join(map(repr, duplicated))} appear more than once. "
            "Nothing from this file was imported."
        )
    missing = [c for c in ("transaction_id", "code", "timestamp") if c not in names]
    if not {"external_subscription_id", "external_customer_id"} & set(names):
        missing.append("external_subscription_id")
    if missing:
        raise CommandError(
            f"{path}: the header lacks {', '.join(missing)}. Nothing from this file was imported."
        )
    return columns


def _with_timestamp_check(record: Record) -> Record:
    """A backfilled event must say when it happened: without a timestamp the service would date
    it at the moment of the import and bill it in the current period."""
    if record.event.get("timestamp") in (None, ""):
        record.problems.append(
            "timestamp is required when importing (the time of the import is not when the usage "
            "happened)."
        )
    return record
