from django.core.management.base import BaseCommand
from django.db import transaction

from metering.rollups import rollups_rebuild
from subscriptions.models import Subscription


class Command(BaseCommand):
    help = "Recompute the usage rollups from the events (after changing a metric's definition)."

    def add_arguments(self, parser):
        parser.add_argument("external_ids", nargs="*", help="Subscriptions (default: all).")

    def handle(self, *args, external_ids, **options):
        subscriptions = Subscription.objects.order_by("pk")
        if external_ids:
            subscriptions = subscriptions.filter(external_id__in=external_ids)
        for subscription in subscriptions:
            with transaction.atomic():
                count = rollups_rebuild(subscription=subscription)
            self.stdout.write(f"{subscription.external_id}: {count:,} events rolled up")
