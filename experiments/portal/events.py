"""Portal page: the tenant's events, a filterable timeline (newest first, 50 a page), each linking to
the run, workflow run or schedule it concerns."""
from __future__ import annotations

from typing import Any

import django_filters
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.urls import path
from django.utils.http import urlencode
from django.views.generic import TemplateView

from tenants.portal import TenantPortalMixin

from ..models import Event, Schedule

PAGE_SIZE = 50
#: What events are about (experiments.runs, scheduling, workflows, checking); others found are added.
OBJECT_TYPES = ["run", "schedule", "workflowrun", "workflownode", "statuscheck"]
OBJECT_TYPE_LABELS = {"run": "run", "schedule": "schedule", "workflowrun": "workflow run",
                      "workflownode": "workflow node", "statuscheck": "status check"}


class EventFilterSet(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=Event.Type.choices, empty_label="Any type")
    reason = django_filters.CharFilter(field_name="reason", lookup_expr="iexact",
                                       help_text="Exactly, e.g. ScheduleFired or NodeFailed.")
    object_type = django_filters.ChoiceFilter(label="About", empty_label="Anything")
    q = django_filters.CharFilter(field_name="message", lookup_expr="icontains", label="Message contains")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="Since (UTC)",
                                             help_text="From this time on, inclusive.")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label="Until (UTC)",
                                             help_text="Before this time.")

    class Meta:
        model = Event
        fields = ["type", "reason", "object_type", "q", "since", "until"]

    def __init__(self, *args: Any, object_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters["object_type"].extra["choices"] = [(t, OBJECT_TYPE_LABELS.get(t, t)) for t in object_types]
        for name in ("since", "until"):
            # A date picker in browsers; its "2025-01-31T09:30" is what the ISO 8601 filter reads.
            self.form.fields[name].widget.input_type = "datetime-local"


def with_schedule_names(events: list[Event], schedules: QuerySet) -> list[Event]:
    """Set `schedule_name` on each event about a schedule that still exists (one query), for its link."""
    ids = {e.object_id for e in events if e.object_type == "schedule" and e.object_id}
    names = {str(k): n for k, n in schedules.filter(uuid__in=ids).values_list("uuid", "name")} if ids else {}
    for event in events:
        event.schedule_name = names.get(event.object_id) if event.object_type == "schedule" else None
    return events


class EventsView(TenantPortalMixin, TemplateView):
    """The tenant's timeline: everything runs, schedules, workflows and status checks did."""

    model = Event
    nav = "events"
    template_name = "experiments/events.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        queryset = self.scoped(Event).select_related("run", "workflow_run").order_by("-created_at", "-id")
        found = set(self.scoped(Event).order_by().values_list("object_type", flat=True).distinct()) - {""}
        object_types = OBJECT_TYPES + sorted(found - set(OBJECT_TYPES))
        filters = EventFilterSet(self.request.GET or None, queryset=queryset, object_types=object_types)
        # Invalid filters show their errors and no rows, rather than silently ignoring a bad date.
        events = filters.qs if not filters.is_bound or filters.is_valid() else queryset.none()
        page = Paginator(events, PAGE_SIZE).get_page(self.request.GET.get("page"))
        query = {k: v for k, v in self.request.GET.items() if k in filters.form.fields and v}
        context.update(
            filters=filters, page=page, events=with_schedule_names(list(page.object_list), self.scoped(Schedule)),
            filter_query=urlencode(query), is_filtered=bool(query),
        )
        return context


urlpatterns = [
    path("events/", EventsView.as_view(), name="events"),
]
