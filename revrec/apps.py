from django.apps import AppConfig


class RevrecConfig(AppConfig):
    name = "revrec"
