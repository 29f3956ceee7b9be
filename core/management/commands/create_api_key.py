from django.core.management.base import BaseCommand

from core.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a machine client. The key is printed once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        key, raw = api_key_create(name=name)
        self.stdout.write(f"Created API key {key.name!r}. Store it now: it is not shown again.")
        self.stdout.write(raw)
