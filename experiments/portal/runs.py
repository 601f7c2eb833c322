"""Portal pages: runs. The tenant's runs (the API's RunFilterSet), a run's page with its timeline (live while
the run is active: runs.js asks `run-live` every second and swaps in the fragments it returns), its pause,
resume and stop, and the archives of ended runs and workflow runs.

Thin: scoping and roles come from TenantPortalMixin, the work from experiments.runs, the timeline's
geometry from experiments.portal.run_timeline."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import django_filters
import yaml
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import CharField, F, QuerySet, Value
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView

from injector.faults import KINDS
from tenants.portal import TenantPortalMixin

from .. import runs
from ..filters import RunFilterSet
from ..models import CheckResult, CheckRun, Event, Run, WorkflowRun
from . import run_timeline

PAGE_SIZE = 50
#: Injection rows and events a run's page shows at most (the API lists them all).
TARGETS_SHOWN = 500
EVENTS_SHOWN = 500
#: The parts of a run's page that runs.js replaces with what `run-live` renders.
LIVE_PARTS = ("summary", "actions", "timeline", "targets", "events")
DRY_RUN_CHOICES = [("", "Any"), ("true", "Dry runs only"), ("false", "Real runs only")]
STEADY_STATE_CHOICES = [("", "Any"), ("held", "Held"), ("broken", "Broken"), ("not-restored", "Not restored"),
                        ("none", "No status checks")]
ORIGIN_LABELS = {Run.Origin.API: "API", Run.Origin.PORTAL: "portal", Run.Origin.MANIFEST: "manifest",
                 Run.Origin.SCHEDULE: "schedule", Run.Origin.WORKFLOW: "workflow"}
OUTCOME_CHOICES = [("finished", "finished (run)"), ("failed", "failed"), ("refused", "refused (run)"),
                   ("succeeded", "succeeded (workflow)"), ("aborted", "aborted (workflow)")]


# What the pages show ------------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    """45 s, 2 min 05 s, 1 h 03 min."""
    if seconds is None:
        return "—"
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def run_duration(run: Run, now: datetime) -> str:
    """How long it ran (or has run so far, while active)."""
    start = run.started_at or run.created_at
    return duration_text(((run.finished_at or now) - start).total_seconds())


def workflow_run_url(tenant_slug: str, workflow_run_id: Any) -> str:
    try:
        return reverse("experiments:workflow-run", kwargs={"tenant_slug": tenant_slug,
                                                           "workflow_run_id": workflow_run_id})
    except NoReverseMatch:  # the workflow pages are another module's; the address is fixed by the issue
        return f"/t/{tenant_slug}/workflow-runs/{workflow_run_id}/"


def origin_of(run: Run, tenant_slug: str) -> dict[str, Any]:
    """How the run was started, and by what or whom (for the list and the run's page)."""
    out: dict[str, Any] = {"label": ORIGIN_LABELS.get(run.origin, run.origin), "name": "", "url": "",
                           "by": run.created_by.get_username() if run.created_by else ""}
    if run.origin == Run.Origin.SCHEDULE and run.schedule is not None:
        out.update(name=run.schedule.name, url=reverse("experiments:schedule", kwargs={
            "tenant_slug": tenant_slug, "schedule_id": run.schedule.uuid}))
    elif run.origin == Run.Origin.WORKFLOW and run.workflow_node is not None:
        wr = run.workflow_node.workflow_run
        out.update(name=f"{wr.workflow_name} · {run.workflow_node.path}", url=workflow_run_url(tenant_slug, wr.uuid))
    return out


def buttons_for(run: Run) -> dict[str, bool]:
    """The commands valid in the run's phase (experiments.runs refuses the others anyway)."""
    return {
        "pause": run.phase == Run.Phase.RUNNING and not run.one_shot,
        "resume": run.phase == Run.Phase.PAUSED,
        "stop": run.phase in runs.STOPPABLE,
    }


def _yaml(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True).strip()


def snapshot_of(run: Run) -> dict[str, Any]:
    """The experiment as the run took it (Run.spec), split as the page shows it."""
    snap = run.spec or {}
    spec = dict(snap.get("spec") or {})
    kind = KINDS.get(run.kind)
    action_field = kind.action_field if kind is not None and kind.action_field else "action"
    shown = {action_field, "mode", "value", "selector", "duration"}
    return {
        "kind_label": kind.label if kind is not None else run.kind,
        "description": snap.get("description", ""),
        "namespace": snap.get("namespace", ""),
        "labels": snap.get("labels") or {},
        "mode": spec.get("mode", ""),
        "value": spec.get("value", ""),
        "duration": spec.get("duration", ""),
        "selector": _yaml(spec.get("selector")),
        "params": _yaml({k: v for k, v in spec.items() if k not in shown}),
        "status_checks": [c.get("name", "") for c in snap.get("status_checks") or [] if isinstance(c, dict)],
    }


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# The list -----------------------------------------------------------------------------------------


class PortalRunFilterSet(RunFilterSet):
    """The API's filters, plus the experiment's name (the API's `experiment` takes its id), with widgets
    that suit a form."""

    experiment_name = django_filters.CharFilter(field_name="experiment_name", lookup_expr="icontains")

    class Meta(RunFilterSet.Meta):
        fields = [*RunFilterSet.Meta.fields, "experiment_name"]

    def __init__(self, *args: Any, kinds: list[str], environments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields = self.form.fields
        fields["phase"].widget = forms.CheckboxSelectMultiple(choices=fields["phase"].choices)
        fields["phase"].label = "Phase"
        fields["experiment_name"].label, fields["experiment_name"].help_text = "Experiment", "Part of its name."
        for name, values, anything in (("kind", kinds, "Any kind"), ("environment", environments, "Any environment")):
            current = self.data.get(name) if self.is_bound else None
            choices = sorted(set(values) | ({current} if current else set()))
            fields[name].widget = forms.Select(choices=[("", anything), *[(v, v) for v in choices]])
            fields[name].label = name.capitalize()
        fields["dry_run"].widget = forms.Select(choices=DRY_RUN_CHOICES)
        fields["dry_run"].label = "Dry run"


def query_of(request: HttpRequest, names: Any) -> str:
    """The filters of this request (repeated values kept), for the pagination links."""
    return urlencode([(k, v) for k, values in request.GET.lists() if k in names for v in values if v])


class RunMixin(TenantPortalMixin):
    model = Run
    nav = "runs"

    def run(self, run_id: Any) -> Run:
        related = ("environment", "experiment", "created_by", "schedule", "workflow_node__workflow_run")
        return get_object_or_404(self.scoped(Run).select_related(*related), uuid=run_id)


class RunsView(RunMixin, TemplateView):
    """The tenant's runs, newest first, with the API's filters."""

    template_name = "experiments/runs.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        every = self.scoped(Run)
        queryset = every.select_related("created_by", "schedule", "workflow_node__workflow_run").order_by(
            "-created_at", "-id")
        seen = every.order_by().values_list("kind", "environment_name").distinct()
        filters = PortalRunFilterSet(
            self.request.GET or None, queryset=queryset,
            kinds=[k for k, _ in seen], environments=[e for _, e in seen],
        )
        # Invalid filters show their errors and no rows, rather than silently showing everything.
        found = filters.qs if not filters.is_bound or filters.is_valid() else queryset.none()
        page = Paginator(found, PAGE_SIZE).get_page(self.request.GET.get("page"))
        now = timezone.now()
        query = query_of(self.request, filters.filters)
        context.update(
            filters=filters, page=page, filter_query=query, is_filtered=bool(query),
            rows=[{"run": r, "duration": run_duration(r, now), "origin": origin_of(r, self.tenant.slug)}
                  for r in page.object_list],
            active_query=urlencode([("phase", p) for p in Run.ACTIVE]),
        )
        return context


# A run --------------------------------------------------------------------------------------------


class RunPartsMixin(RunMixin):
    def parts(self, run: Run) -> dict[str, Any]:
        """What the live parts of a run's page show: its rows, queried once for the page or the poll."""
        now = timezone.now()
        rows = list(run.injections.all()[:TARGETS_SHOWN + 1])
        total = len(rows) if len(rows) <= TARGETS_SHOWN else run.injections.count()
        rows = rows[:TARGETS_SHOWN]
        checks = list(self.scoped(CheckRun).filter(run=run).order_by("created_at", "id"))
        results = list(CheckResult.objects.filter(check_run__in=checks).order_by("at", "id")) if checks else []
        events = list(self.scoped(Event).filter(run=run).order_by("created_at", "id")[:EVENTS_SHOWN])
        return {
            "run": run, "now": now, "ended": run.archived, "buttons": buttons_for(run),
            "duration": run_duration(run, now), "planned": duration_text(run.duration_seconds),
            "origin": origin_of(run, self.tenant.slug),
            "injections": rows, "injections_total": total, "checks": checks, "events": events,
            "timeline": run_timeline.build(run, rows, checks, results, now),
        }


class RunView(RunPartsMixin, TemplateView):
    """A run: what it ran and where, its timeline, targets and events; live while it is active."""

    template_name = "experiments/run.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        run = self.run(kwargs["run_id"])
        context.update(self.parts(run), snapshot=snapshot_of(run))
        return context


class RunLiveView(RunPartsMixin, View):
    """GET: the run's state as JSON for runs.js, with its page's live parts rendered (`html`), so the
    page and the poll draw them with the same templates."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest, tenant_slug: str, run_id: Any) -> HttpResponse:
        run = self.run(run_id)
        parts = self.parts(run)
        context = {**parts, "tenant": self.tenant, "role": self.role, "is_operator": self.is_operator}
        body = {
            "id": str(run.uuid), "phase": run.phase, "ended": run.archived, "message": run.message,
            "steady_state": run.steady_state, "dry_run": run.dry_run,
            "started_at": _when(run.started_at), "finished_at": _when(run.finished_at),
            "deadline": _when(run.deadline), "now": _when(parts["now"]),
            "buttons": parts["buttons"] if self.is_operator else {k: False for k in parts["buttons"]},
            "targets": [{
                "target": i.target_display or i.target_key, "key": i.target_key, "state": i.state, "round": i.round,
                "injected_at": _when(i.injected_at), "recovered_at": _when(i.recovered_at), "error": i.error,
            } for i in parts["injections"]],
            "targets_total": parts["injections_total"],
            "checks": [{"name": c.name, "purpose": c.purpose, "phase": c.phase, "probes": c.probes,
                        "failures": c.failures} for c in parts["checks"]],
            "events": [{"at": _when(e.created_at), "type": e.type, "reason": e.reason, "message": e.message}
                       for e in parts["events"]],
            "html": {name: render_to_string(f"experiments/run_{name}.html", context, request=request)
                     for name in LIVE_PARTS},
        }
        response = JsonResponse(body)
        response["Cache-Control"] = "no-store"
        return response


class RunCommandView(RunMixin, View):
    """POST: pause, resume or stop the run through experiments.runs, then back to its page."""

    action = "change"
    http_method_names = ["post"]
    verb = ""

    def command(self, run: Run) -> tuple[int, str]:
        """(message level, text) of what was done; a ValidationError when the run's phase does not allow it."""
        raise NotImplementedError

    def post(self, request: HttpRequest, tenant_slug: str, run_id: Any) -> HttpResponse:
        run = self.run(run_id)
        try:
            level, text = self.command(run)
        except ValidationError as error:
            messages.error(request, f"This run was not {self.verb}: {' '.join(error.messages)}.")
        else:
            messages.add_message(request, level, text)
        return redirect("experiments:run", tenant_slug=self.tenant.slug, run_id=run.uuid)


class RunPauseView(RunCommandView):
    verb = "paused"

    def command(self, run: Run) -> tuple[int, str]:
        runs.pause(self.actor, run)
        return messages.SUCCESS, "Pausing: the faults are being recovered. Resume puts them back until the deadline."


class RunResumeView(RunCommandView):
    verb = "resumed"

    def command(self, run: Run) -> tuple[int, str]:
        runs.resume(self.actor, run)
        return messages.SUCCESS, "Resumed: the same targets are being injected again."


class RunStopView(RunCommandView):
    verb = "stopped"

    def command(self, run: Run) -> tuple[int, str]:
        if runs.stop(self.actor, run):
            return messages.SUCCESS, "Stopping: every fault of this run is being recovered."
        phase = Run.objects.filter(pk=run.pk).values_list("phase", flat=True).first()
        return messages.INFO, f"This run was already {phase}: there was nothing to stop."


# Archives -----------------------------------------------------------------------------------------


class ArchiveFilterForm(forms.Form):
    what = forms.ChoiceField(label="Show", required=False, choices=[
        ("", "Runs and workflow runs"), ("runs", "Runs only"), ("workflows", "Workflow runs only")])
    outcome = forms.MultipleChoiceField(label="Outcome", required=False, choices=OUTCOME_CHOICES,
                                        widget=forms.CheckboxSelectMultiple)
    name = forms.CharField(label="Name", required=False, max_length=253,
                           help_text="Part of the experiment's or workflow's name.")
    environment = forms.CharField(label="Environment", required=False, max_length=63)
    dry_run = forms.NullBooleanField(label="Dry run", required=False, widget=forms.Select(choices=DRY_RUN_CHOICES))
    steady_state = forms.ChoiceField(label="Steady state", required=False, choices=STEADY_STATE_CHOICES,
                                     help_text="Of runs; workflow runs have none of their own.")

    def __init__(self, *args: Any, environments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.data.get("environment") if self.is_bound else None
        names = sorted(set(environments) | ({current} if current else set()))
        self.fields["environment"].widget = forms.Select(choices=[("", "Any environment"), *[(n, n) for n in names]])


#: The columns both kinds of archived row share (all annotations, so both SELECTs list them in this order).
ARCHIVE_COLUMNS = ("a_type", "a_uuid", "a_name", "a_environment", "a_phase", "a_dry_run", "a_origin",
                   "a_steady_state", "a_message", "a_created_at", "a_started_at", "a_finished_at")


def archive_rows(ended_runs: QuerySet, ended_workflow_runs: QuerySet) -> QuerySet:
    """Ended runs and ended workflow runs as one queryset (a UNION), the last to end first."""
    runs_part = ended_runs.annotate(
        a_type=Value("run", output_field=CharField()), a_uuid=F("uuid"), a_name=F("experiment_name"),
        a_environment=F("environment_name"), a_phase=F("phase"), a_dry_run=F("dry_run"), a_origin=F("origin"),
        a_steady_state=F("steady_state"), a_message=F("message"), a_created_at=F("created_at"),
        a_started_at=F("started_at"), a_finished_at=F("finished_at"),
    ).order_by().values(*ARCHIVE_COLUMNS)  # no ORDER BY inside a UNION's parts (SQLite refuses it)
    workflows_part = ended_workflow_runs.annotate(
        a_type=Value("workflow", output_field=CharField()), a_uuid=F("uuid"), a_name=F("workflow_name"),
        a_environment=F("environment_name"), a_phase=F("phase"), a_dry_run=F("dry_run"), a_origin=F("origin"),
        a_steady_state=Value("", output_field=CharField()), a_message=F("message"), a_created_at=F("created_at"),
        a_started_at=F("created_at"), a_finished_at=F("finished_at"),
    ).order_by().values(*ARCHIVE_COLUMNS)
    return runs_part.union(workflows_part, all=True).order_by(
        F("a_finished_at").desc(nulls_last=True), F("a_created_at").desc())


class ArchivesView(TenantPortalMixin, TemplateView):
    """Ended runs and workflow runs: read-only, filterable, the last to end first."""

    model = Run
    nav = "archives"
    template_name = "experiments/archives.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        ended_runs = self.scoped(Run).filter(phase__in=Run.ENDED)
        ended_wrs = self.scoped(WorkflowRun).filter(phase__in=WorkflowRun.ENDED)
        environments = set(ended_runs.order_by().values_list("environment_name", flat=True).distinct())
        environments |= set(ended_wrs.order_by().values_list("environment_name", flat=True).distinct())
        form = ArchiveFilterForm(self.request.GET or None, environments=sorted(environments))
        if form.is_bound and not form.is_valid():
            ended_runs, ended_wrs = ended_runs.none(), ended_wrs.none()
        elif form.is_bound:
            ended_runs, ended_wrs = self.filtered(form.cleaned_data, ended_runs, ended_wrs)
        page = Paginator(archive_rows(ended_runs, ended_wrs), PAGE_SIZE).get_page(self.request.GET.get("page"))
        query = query_of(self.request, form.fields)
        context.update(form=form, page=page, filter_query=query, is_filtered=bool(query),
                       rows=[self.row(r) for r in page.object_list])
        return context

    @staticmethod
    def filtered(data: dict[str, Any], ended_runs: QuerySet, ended_wrs: QuerySet) -> tuple[QuerySet, QuerySet]:
        # A form of its own rather than the API's two FilterSets: one set of fields narrows both models.
        if data["what"] == "runs":
            ended_wrs = ended_wrs.none()
        elif data["what"] == "workflows":
            ended_runs = ended_runs.none()
        if data["outcome"]:
            ended_runs = ended_runs.filter(phase__in=data["outcome"])
            ended_wrs = ended_wrs.filter(phase__in=data["outcome"])
        if data["name"]:
            ended_runs = ended_runs.filter(experiment_name__icontains=data["name"])
            ended_wrs = ended_wrs.filter(workflow_name__icontains=data["name"])
        if data["environment"]:
            ended_runs = ended_runs.filter(environment_name=data["environment"])
            ended_wrs = ended_wrs.filter(environment_name=data["environment"])
        if data["dry_run"] is not None:
            ended_runs = ended_runs.filter(dry_run=data["dry_run"])
            ended_wrs = ended_wrs.filter(dry_run=data["dry_run"])
        if data["steady_state"]:
            wanted = "" if data["steady_state"] == "none" else data["steady_state"]
            ended_runs = ended_runs.filter(steady_state=wanted)
            ended_wrs = ended_wrs.none()
        return ended_runs, ended_wrs

    def row(self, values: dict[str, Any]) -> dict[str, Any]:
        is_run = values["a_type"] == "run"
        slug = self.tenant.slug
        url = (reverse("experiments:run", kwargs={"tenant_slug": slug, "run_id": values["a_uuid"]}) if is_run
               else workflow_run_url(slug, values["a_uuid"]))
        start, end = values["a_started_at"] or values["a_created_at"], values["a_finished_at"]
        return {
            "is_run": is_run, "url": url, "uuid": values["a_uuid"], "name": values["a_name"],
            "environment": values["a_environment"], "phase": values["a_phase"], "dry_run": values["a_dry_run"],
            "origin": ORIGIN_LABELS.get(values["a_origin"], values["a_origin"]),
            "steady_state": values["a_steady_state"], "message": values["a_message"],
            "started_at": values["a_created_at"], "finished_at": end,
            "duration": duration_text((end - start).total_seconds()) if end else "—",
        }


urlpatterns = [
    path("runs/", RunsView.as_view(), name="runs"),
    path("archives/", ArchivesView.as_view(), name="archives"),
    path("runs/<uuid:run_id>/", RunView.as_view(), name="run"),
    path("runs/<uuid:run_id>/live/", RunLiveView.as_view(), name="run-live"),
    path("runs/<uuid:run_id>/pause/", RunPauseView.as_view(), name="run-pause"),
    path("runs/<uuid:run_id>/resume/", RunResumeView.as_view(), name="run-resume"),
    path("runs/<uuid:run_id>/stop/", RunStopView.as_view(), name="run-stop"),
]
