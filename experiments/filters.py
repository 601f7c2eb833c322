"""Filters shared by the experiments API list and (later) the portal table."""
from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from .models import Experiment, Run, Schedule, WorkflowRun


class ExperimentFilterSet(django_filters.FilterSet):
    kind = django_filters.CharFilter(field_name="kind", help_text="A chaos kind, e.g. NetworkChaos.")
    action = django_filters.CharFilter(field_name="action")
    label = django_filters.CharFilter(method="filter_label", help_text="key=value, or key to ask for the key alone.")
    q = django_filters.CharFilter(method="filter_text", help_text="Text in the name or the description.")

    class Meta:
        model = Experiment
        fields = ["kind", "action", "label", "q"]

    def filter_label(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        key, sep, wanted = value.partition("=")
        if not sep:
            return queryset.filter(labels__has_key=key.strip())
        return queryset.filter(**{f"labels__{key.strip()}": wanted.strip()})

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class RunFilterSet(django_filters.FilterSet):
    phase = django_filters.MultipleChoiceFilter(choices=Run.Phase.choices, help_text="One or more phases.")
    experiment = django_filters.UUIDFilter(field_name="experiment__uuid", help_text="An experiment's id.")
    environment = django_filters.CharFilter(field_name="environment_name")
    kind = django_filters.CharFilter(field_name="kind")
    dry_run = django_filters.BooleanFilter(field_name="dry_run")

    class Meta:
        model = Run
        fields = ["phase", "experiment", "environment", "kind", "dry_run"]


class ScheduleFilterSet(django_filters.FilterSet):
    paused = django_filters.BooleanFilter(field_name="paused")
    experiment = django_filters.CharFilter(field_name="experiment__name", help_text="An experiment's name.")
    workflow = django_filters.CharFilter(field_name="workflow__name", help_text="A workflow's name.")
    environment = django_filters.CharFilter(field_name="environment__name", help_text="An environment's name.")

    class Meta:
        model = Schedule
        fields = ["paused", "experiment", "workflow", "environment"]


class WorkflowRunFilterSet(django_filters.FilterSet):
    phase = django_filters.MultipleChoiceFilter(choices=WorkflowRun.Phase.choices, help_text="One or more phases.")
    workflow = django_filters.CharFilter(field_name="workflow_name", help_text="The workflow's name.")
    environment = django_filters.CharFilter(field_name="environment_name")
    dry_run = django_filters.BooleanFilter(field_name="dry_run")

    class Meta:
        model = WorkflowRun
        fields = ["phase", "workflow", "environment", "dry_run"]
