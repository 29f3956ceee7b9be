from django.apps import AppConfig


class DemoConfig(AppConfig):
    """A demo company seeded through the real services (`manage.py seed_demo`). No models."""

    name = "demo"
    verbose_name = "Demo data"
