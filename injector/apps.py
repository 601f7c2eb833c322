from django.apps import AppConfig


class InjectorConfig(AppConfig):
    name = "injector"
