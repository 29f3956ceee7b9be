"""manage.py audit_ledger [--strict]: recompute the stored figures from the source documents
(revrec.audit), print each difference on a line and a summary; exit 1 if any, 0 if clean."""

import sys

from django.core.management.base import BaseCommand

from revrec.audit import audit


class Command(BaseCommand):
    help = (
        "Audit the ledger read-only: invoices, credit notes, payments, recognition and the "
        "journal against their source documents. Exit 1 on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Documents not posted to the journal yet fail the audit too.",
        )

    def handle(self, *args, strict=False, **options):
        diffs = audit()
        for diff in diffs:
            self.stdout.write(str(diff))
        failing = [d for d in diffs if strict or not d.strict_only]
        unposted = sum(1 for d in diffs if d.strict_only)
        summary = f"{len(failing)} difference(s)"
        if unposted and not strict:
            summary += (
                f"; {unposted} document(s) not posted yet (not failing without --strict; "
                "the per-customer tie-out is skipped until they are posted)"
            )
        if failing:
            self.stdout.write(f"Ledger audit: {summary}.")
            sys.exit(1)
        self.stdout.write(f"Ledger audit: clean ({summary}).")
