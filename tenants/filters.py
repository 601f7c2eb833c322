"""Filters shared by the API list and the portal table."""
from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from .models import AuditEntry


class AuditEntryFilterSet(django_filters.FilterSet):
    actor = django_filters.CharFilter(
        method="filter_actor", help_text="A username, a token id (prefix), or 'system'."
    )
    action = django_filters.CharFilter(
        method="filter_action", help_text="An action (member.add) or a family ending in a dot (member.)."
    )
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "since", "until"]

    def filter_actor(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if value == "system":
            return queryset.filter(actor_kind=AuditEntry.ActorKind.SYSTEM)
        return queryset.filter(
            Q(actor_user__username=value) | Q(actor_token__prefix=value) | Q(actor_label=value)
        )

    def filter_action(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        return queryset.filter(action__startswith=value) if value.endswith(".") else queryset.filter(action=value)
