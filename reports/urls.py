"""/metrics, and the portal's report and webhook pages under /t/<tenant>/."""
from django.urls import include, path

from . import metrics
from .portal import reports, webhooks

app_name = "reports"

tenant = "t/<slug:tenant_slug>"
urlpatterns = [
    *metrics.urlpatterns,
    *[path(f"{tenant}/", include(module.urlpatterns)) for module in (reports, webhooks)],
]
