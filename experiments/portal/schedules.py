"""Portal pages: schedules (cron ticks that start runs and workflow runs). Thin: scoping and roles come
from TenantPortalMixin, the work from experiments.services and experiments.scheduling; the cron in words
and its next ticks from injector.cron (also as JSON for the form's live preview)."""
from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from injector import cron, manifests
from injector.faults.params import FieldError
from injector.models import Environment
from tenants.forms import add_service_error
from tenants.models import Policy
from tenants.portal import TenantPortalMixin
from tenants.roles import at_least

from .. import scheduling, services
from ..models import NAME_LENGTH, Event, Experiment, Run, Schedule, Workflow, WorkflowRun
from . import latest_per

NEXT_FIRE_TIMES = 5
RECENT_RUNS = 20
RECENT_EVENTS = 50
#: Where a service error about what the schedule runs lands in the form.
TARGET_KEYS = {"experiment": "target", "workflow": "target"}


def describe(expression: str) -> str:
    """The cron in words, or "" when it does not parse (the sweep pauses such a schedule)."""
    try:
        return cron.describe(expression)
    except cron.CronError:
        return ""


def preview(expression: str, time_zone: str, n: int = NEXT_FIRE_TIMES,
            now: datetime | None = None) -> tuple[str, list[datetime], dict[str, list[str]]]:
    """(the cron in words, its next `n` ticks from now, errors by field) for what the form holds."""
    errors: dict[str, list[str]] = {}
    text, spec, zone = "", None, None
    try:
        spec = cron.parse(expression)
        text = cron.describe(expression)
    except cron.CronError as error:
        errors["cron"] = [str(error)]
    try:
        zone = cron.zone(time_zone or "UTC")
    except cron.CronError as error:
        errors["time_zone"] = [str(error)]
    if spec is None or zone is None:
        return text, [], errors
    return text, cron.next_times(spec, now or timezone.now(), zone, n), errors


class RequireActionOnGet:
    """Form pages: a GET needs the role of what the form does, so a viewer never sees a form that fails."""

    def require_action(self) -> None:
        if not at_least(self.role, self.model.role_for(self.action)):
            raise PermissionDenied(f"Your role in {self.tenant.slug} ({self.role}) cannot {self.action} "
                                   f"{self.model._meta.verbose_name_plural}.")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.require_action()
        return super().get(request, *args, **kwargs)


def check_name(value: str) -> str:
    try:
        return manifests.NAME.parse(value, "name")
    except FieldError as error:
        raise ValidationError(error.message) from None


class ScheduleForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_LENGTH, validators=[check_name],
        help_text="Lowercase letters, digits, '-' and '.'. It cannot be changed later.",
    )
    description = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    target = forms.ChoiceField(label="Runs", help_text="The experiment or the workflow each tick starts.")
    environment = forms.ChoiceField(help_text="Where the runs inject their faults.")
    cron = forms.CharField(
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "*/15 * * * *"}),
        help_text='5 fields (minute hour day month weekday), 6 with seconds first, @hourly and friends, or '
        '"@every 30s".',
    )
    time_zone = forms.CharField(
        max_length=64, initial="UTC", widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
        help_text="The IANA zone the cron's hours are read in, e.g. Europe/Berlin. Fire times are shown in UTC.",
    )
    concurrency_policy = forms.ChoiceField(
        choices=Schedule.ConcurrencyPolicy.choices, initial=Schedule.ConcurrencyPolicy.FORBID,
        help_text="Forbid: skip a tick while a run of this schedule is still active. Allow: start it anyway.",
    )
    history_limit = forms.IntegerField(
        required=False, min_value=1, help_text="How many ended runs stay on the schedule's list (all stay archived). "
        "Empty: all.",
    )
    starting_deadline_seconds = forms.IntegerField(
        required=False, min_value=0, label="Starting deadline (seconds)",
        help_text="A tick that cannot start within this many seconds is skipped. Empty: never skipped.",
    )
    dry_run = forms.TypedChoiceField(
        required=False, coerce=lambda v: v == "true", empty_value=None, label="Dry run",
        help_text="A dry run selects its targets and touches nothing.",
    )
    paused = forms.BooleanField(required=False, help_text="A paused schedule fires no tick until resumed.")

    def __init__(self, *args: Any, experiments: list[str], workflows: list[str], environments: list[str],
                 policy_dry_run: bool, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [
            ("", "Choose an experiment or a workflow"),
            ("Experiments", [(f"experiment:{name}", name) for name in experiments]),
            ("Workflows", [(f"workflow:{name}", name) for name in workflows]),
        ]
        self.fields["environment"].choices = [("", "Choose an environment"), *[(n, n) for n in environments]]
        default = "dry run" if policy_dry_run else "real faults"
        self.fields["dry_run"].choices = [("", f"The tenant's default (now: {default})"),
                                          ("true", "Dry run: touch nothing"), ("false", "Real faults")]
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "A schedule's name cannot be changed."

    def service_data(self) -> dict[str, Any]:
        """The form as the fields experiments.services.save_schedule takes (the API's)."""
        data = dict(self.cleaned_data)
        kind, _, name = data.pop("target").partition(":")
        data["experiment"] = name if kind == "experiment" else None
        data["workflow"] = name if kind == "workflow" else None
        if self.fields["name"].disabled:
            data.pop("name")
        return data

    def add_service_error(self, error: ValidationError | PermissionDenied) -> None:
        if isinstance(error, PermissionDenied):
            self.add_error("environment", str(error))
            return
        if hasattr(error, "error_dict"):
            error = ValidationError({TARGET_KEYS.get(k, k): v for k, v in error.error_dict.items()})
        add_service_error(self, error)


def schedule_initial(schedule: Schedule) -> dict[str, Any]:
    target = (f"experiment:{schedule.experiment.name}" if schedule.experiment_id
              else f"workflow:{schedule.workflow.name}" if schedule.workflow_id else "")
    return {
        "name": schedule.name, "description": schedule.description, "target": target,
        "environment": schedule.environment.name if schedule.environment_id else "", "cron": schedule.cron,
        "time_zone": schedule.time_zone, "concurrency_policy": schedule.concurrency_policy,
        "history_limit": schedule.history_limit, "starting_deadline_seconds": schedule.starting_deadline_seconds,
        "dry_run": "" if schedule.dry_run is None else str(schedule.dry_run).lower(), "paused": schedule.paused,
    }


class ScheduleMixin(TenantPortalMixin):
    model = Schedule
    nav = "schedules"

    def schedule(self, schedule_id: Any) -> Schedule:
        return get_object_or_404(
            self.scoped(Schedule).select_related("experiment", "workflow", "environment", "created_by",
                                                  "workflow_node__workflow_run"),
            uuid=schedule_id,
        )

    def refuse_node_schedule(self, schedule: Schedule) -> HttpResponse | None:
        """A workflow node's schedule lives and dies with its node: nothing here changes it."""
        if schedule.workflow_node_id is None:
            return None
        messages.error(self.request, "This schedule belongs to a node of a workflow run and ends with it; abort "
                                     "the workflow run to stop it.")
        return redirect("experiments:schedule", tenant_slug=self.tenant.slug, schedule_id=schedule.uuid)


class SchedulesView(ScheduleMixin, TemplateView):
    """The tenant's schedules (not those of workflow nodes), with what each runs and when."""

    template_name = "experiments/schedules.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        schedules = list(self.scoped(Schedule).filter(workflow_node__isnull=True)
                         .select_related("experiment", "workflow", "environment").order_by("name"))
        ids = [s.pk for s in schedules]
        # The newest run and workflow run of each schedule: two queries whatever the number of rows.
        last: dict[int, Any] = {}
        for model in (Run, WorkflowRun):
            for row in latest_per(self.scoped(model).filter(schedule_id__in=ids), "schedule_id").values():
                if row.schedule_id not in last or row.created_at > last[row.schedule_id].created_at:
                    last[row.schedule_id] = row
        context["rows"] = [{"schedule": s, "description": describe(s.cron), "last": last.get(s.pk),
                            "last_is_run": isinstance(last.get(s.pk), Run)} for s in schedules]
        return context


class ScheduleFormView(RequireActionOnGet, ScheduleMixin, TemplateView):
    """Create a schedule (and, as ScheduleEditView, change one)."""

    template_name = "experiments/schedule_form.html"
    action = "add"
    editing: Schedule | None = None

    def make_form(self, data: Any = None) -> ScheduleForm:
        environments = list(Environment.objects.restrict(self.actor, "run").filter(tenant=self.tenant)
                            .order_by("name").values_list("name", flat=True))
        current = self.editing.environment if self.editing is not None else None
        if current is not None and current.name not in environments:
            environments.append(current.name)
        policy = Policy.objects.filter(tenant=self.tenant).first()
        return ScheduleForm(
            data,
            initial=schedule_initial(self.editing) if self.editing is not None else None,
            experiments=list(self.scoped(Experiment).order_by("name").values_list("name", flat=True)),
            workflows=list(self.scoped(Workflow).order_by("name").values_list("name", flat=True)),
            environments=environments, policy_dry_run=bool(policy and policy.dry_run_by_default),
            editing=self.editing is not None,
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = kwargs.get("form") or self.make_form()
        expression, zone = form["cron"].value() or "", form["time_zone"].value() or "UTC"
        text, times, errors = preview(expression, zone) if expression else ("", [], {})
        context.update(
            form=form, schedule=self.editing, preview_text=text, preview_times=times,
            preview_error=" ".join(errors.get("cron", []) + errors.get("time_zone", [])),
            time_zones=sorted(zoneinfo.available_timezones() - {"localtime"}),
            nothing_to_run=not self.scoped(Experiment).exists() and not self.scoped(Workflow).exists(),
        )
        return context

    def post(self, request: HttpRequest, tenant_slug: str, **kwargs: Any) -> HttpResponse:
        form = self.make_form(request.POST)
        if form.is_valid():
            try:
                schedule = services.save_schedule(self.actor, self.tenant, form.service_data(), self.editing)
            except (ValidationError, PermissionDenied) as error:
                form.add_service_error(error)
            else:
                verb = "Saved" if self.editing is not None else "Created"
                messages.success(request, f"{verb} schedule {schedule.name}.")
                return redirect("experiments:schedule", tenant_slug=self.tenant.slug, schedule_id=schedule.uuid)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ScheduleEditView(ScheduleFormView):
    action = "change"

    def get(self, request: HttpRequest, tenant_slug: str, schedule_id: Any) -> HttpResponse:
        self.editing = self.schedule(schedule_id)
        self.require_action()
        return self.refuse_node_schedule(self.editing) or super().get(request, tenant_slug)

    def post(self, request: HttpRequest, tenant_slug: str, schedule_id: Any) -> HttpResponse:
        self.editing = self.schedule(schedule_id)
        return self.refuse_node_schedule(self.editing) or super().post(request, tenant_slug)


class ScheduleView(ScheduleMixin, TemplateView):
    """A schedule: its settings, next ticks, what it started lately and its events."""

    template_name = "experiments/schedule.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        schedule = self.schedule(kwargs["schedule_id"])
        try:
            times, cron_error = scheduling.next_times(schedule, NEXT_FIRE_TIMES), ""
        except ValidationError as error:
            times, cron_error = [], " ".join(error.messages)
        events = (self.scoped(Event).filter(object_type="schedule", object_id=str(schedule.uuid))
                  .select_related("run", "workflow_run").order_by("-created_at", "-id")[:RECENT_EVENTS])
        context.update(
            schedule=schedule, description=describe(schedule.cron), next_times=times, cron_error=cron_error,
            runs=list(self.scoped(Run).filter(schedule=schedule).order_by("-created_at", "-id")[:RECENT_RUNS]),
            workflow_runs=list(self.scoped(WorkflowRun).filter(schedule=schedule)
                               .order_by("-created_at", "-id")[:RECENT_RUNS]),
            events=list(events),
            can_change=self.is_operator and schedule.workflow_node_id is None,
            can_delete=at_least(self.role, Schedule.role_for("delete")) and schedule.workflow_node_id is None,
        )
        return context


class ScheduleActionView(ScheduleMixin, View):
    """POST only: pause, resume or delete a schedule, then back to a page with the outcome as a message."""

    http_method_names = ["post"]
    action = "change"

    def post(self, request: HttpRequest, tenant_slug: str, schedule_id: Any) -> HttpResponse:
        schedule = self.schedule(schedule_id)
        return self.refuse_node_schedule(schedule) or self.perform(schedule)

    def perform(self, schedule: Schedule) -> HttpResponse:
        raise NotImplementedError

    def back(self, schedule: Schedule) -> HttpResponse:
        return redirect("experiments:schedule", tenant_slug=self.tenant.slug, schedule_id=schedule.uuid)


class SchedulePauseView(ScheduleActionView):
    def perform(self, schedule: Schedule) -> HttpResponse:
        if schedule.paused:
            messages.info(self.request, f"{schedule.name} was already paused.")
        else:
            services.set_paused(self.actor, schedule, True)
            messages.success(self.request, f"Paused {schedule.name}: no tick fires until you resume it. Runs it "
                                           "already started go on.")
        return self.back(schedule)


class ScheduleResumeView(ScheduleActionView):
    def perform(self, schedule: Schedule) -> HttpResponse:
        if not schedule.paused:
            messages.info(self.request, f"{schedule.name} was already running.")
            return self.back(schedule)
        try:
            schedule = services.set_paused(self.actor, schedule, False)
        except ValidationError as error:  # a stored cron the parser no longer reads
            messages.error(self.request, f"{schedule.name} cannot resume: {' '.join(error.messages)} Edit its cron.")
            return self.back(schedule)
        when = f" The next tick is at {schedule.next_fire_at:%Y-%m-%d %H:%M:%S} UTC." if schedule.next_fire_at else ""
        messages.success(self.request, f"Resumed {schedule.name}; ticks missed while paused are not fired.{when}")
        return self.back(schedule)


class ScheduleDeleteView(ScheduleActionView):
    action = "delete"

    def perform(self, schedule: Schedule) -> HttpResponse:
        services.delete_schedule(self.actor, schedule)
        messages.success(self.request, f"Deleted schedule {schedule.name}. The runs it started go on until their "
                                       "deadline and stay in the archive.")
        return redirect("experiments:schedules", tenant_slug=self.tenant.slug)


class SchedulePreviewView(ScheduleMixin, View):
    """GET ?cron=…&time_zone=…: the cron in words and its next ticks (UTC), or errors naming the field."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        text, times, errors = preview(request.GET.get("cron", "").strip(), request.GET.get("time_zone", "").strip())
        body = {
            "description": text,
            "next": [t.isoformat() for t in times],
            "next_text": [f"{t:%Y-%m-%d %H:%M:%S} UTC" for t in times],
        }
        if errors:
            return JsonResponse({**body, "errors": errors}, status=400)
        return JsonResponse(body)


urlpatterns = [
    path("schedules/", SchedulesView.as_view(), name="schedules"),
    path("schedules/new/", ScheduleFormView.as_view(), name="schedule-new"),
    path("schedules/preview/", SchedulePreviewView.as_view(), name="schedule-preview"),
    path("schedules/<uuid:schedule_id>/", ScheduleView.as_view(), name="schedule"),
    path("schedules/<uuid:schedule_id>/edit/", ScheduleEditView.as_view(), name="schedule-edit"),
    path("schedules/<uuid:schedule_id>/pause/", SchedulePauseView.as_view(), name="schedule-pause"),
    path("schedules/<uuid:schedule_id>/resume/", ScheduleResumeView.as_view(), name="schedule-resume"),
    path("schedules/<uuid:schedule_id>/delete/", ScheduleDeleteView.as_view(), name="schedule-delete"),
]
