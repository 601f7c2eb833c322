from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Reports read what experiments and tenants wrote; they never change it. Webhooks and metrics
    follow the run lifecycle through signals on those apps' rows (experiments never imports reports)."""

    name = "reports"

    def ready(self) -> None:
        from . import metrics, webhooks  # noqa: F401 - each connects its own signal receivers
