"""manage.py shadow_billing --as-of 2026-03-01 [--expected expected.csv] [--out shadow.csv]"""

import datetime as dt
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import ValidationError
from core.money import plain
from invoicing.shadow import read_expected, shadow_billing, shadow_csv, shadow_differences


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--as-of {text!r} is not a date: use YYYY-MM-DD.") from exc


class Command(BaseCommand):
    help = (
        "Run the billing as of a date through the billing run's own code, saving nothing: write "
        "every line of every invoice it would make as CSV, and with --expected list how its "
        "totals differ from the expected ones (exit status 1 when they do)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", required=True, type=_date, help="YYYY-MM-DD")
        parser.add_argument(
            "--expected",
            type=Path,
            help="CSV with customer, subscription, billing_date, total (external ids).",
        )
        parser.add_argument("--out", type=Path, help="Where to write the CSV (default: stdout).")

    def handle(self, *args, as_of, expected=None, out=None, **options):
        wanted = None
        if expected is not None:
            try:
                wanted = read_expected(expected.read_text(encoding="utf-8"))
            except OSError as exc:
                raise CommandError(f"Cannot read {expected}: {exc.strerror}.") from exc
            except ValidationError as exc:
                raise CommandError(exc.message) from exc
        run = shadow_billing(as_of=as_of)
        report = shadow_csv(run)
        if out is None:
            self.stdout.write(report, ending="")
        else:
            out.write_text(report, encoding="utf-8")
        # The summary goes to stderr, so that stdout stays a clean CSV.
        say = sys.stderr.write if out is None else self.stdout.write
        say(
            f"Shadow billing as of {as_of}: {len(run.invoices)} invoices, "
            f"{plain(run.total, grouping=True)} in total, for {run.subscriptions_seen} "
            f"subscriptions; nothing was saved.\n"
        )
        for external_id, problem in run.failed.items():
            say(f"failed: {external_id}: {problem}\n")
        if wanted is None:
            return
        differences = shadow_differences(run, wanted)
        for difference in differences:
            say(f"{difference}\n")
        if differences:
            raise CommandError(f"{len(differences)} differences from {expected}.")
        say(f"No difference from {expected}.\n")
