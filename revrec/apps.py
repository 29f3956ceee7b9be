from django.apps import AppConfig


class RevrecConfig(AppConfig):
    name = "revrec"
    verbose_name = "Revenue"  # the admin's breadcrumbs and app list, as the sidebar names it
