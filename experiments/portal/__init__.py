"""Portal pages of the experiments app, one module per area (each with its views and `urlpatterns`,
relative to /t/<tenant_slug>/). Thin, as every view here: scoping and permissions from
tenants.portal.TenantPortalMixin, the work from experiments.services, runs, scheduling and workflows."""

from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery


def latest_per(queryset: QuerySet, key: str) -> dict[Any, Any]:
    """The newest row (by created_at, then id) of `queryset` for each value of `key` (a column such as
    "experiment_id"), in one query that any database runs (no PostgreSQL-only DISTINCT ON)."""
    newest = queryset.model.objects.filter(**{key: OuterRef(key)}).order_by("-created_at", "-id").values("pk")[:1]
    rows = queryset.annotate(newest_pk=Subquery(newest)).filter(pk=F("newest_pk"))
    return {getattr(row, key): row for row in rows}
