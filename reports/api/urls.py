"""/api/v1/tenants/{slug}/: run reports, audit reports and webhooks."""
from . import audit, run_reports, webhooks

urlpatterns = [*run_reports.urlpatterns, *audit.urlpatterns, *webhooks.urlpatterns]
