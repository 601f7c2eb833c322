from django.apps import AppConfig


class GrantsConfig(AppConfig):
    name = "tests.grants"
    label = "grants"
