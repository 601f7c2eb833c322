"""Portal pages: workflows (Chaos Mesh's Workflow: a tree of Serial, Parallel, Suspend, chaos,
StatusCheck and Schedule templates) and their runs. Thin: scoping and roles come from
TenantPortalMixin, the work from experiments.services and experiments.workflows.

The tree is drawn on the server (nested boxes, one per node, each with a `data-path`); a workflow
run's page asks `workflow-run-live` for its nodes every second (static/js/workflows.js) and updates
them in place until the run ends."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views import View
from django.views.generic import TemplateView

from injector import manifests
from injector.faults import KINDS
from injector.manifests import DESCRIPTION_ANNOTATION, embed_key
from injector.models import Environment
from tenants.forms import add_service_error
from tenants.models import Policy
from tenants.portal import TenantPortalMixin
from tenants.roles import at_least

from .. import services, workflows
from ..models import CheckRun, Event, Experiment, Run, Schedule, Workflow, WorkflowNode, WorkflowRun
from . import latest_per
from .schedules import RequireActionOnGet
from .workflow_forms import (
    StartRunForm,
    StepFormSet,
    StepsWorkflowForm,
    YamlWorkflowForm,
    by_field,
    steps_spec,
)

BRANCHES = ("Serial", "Parallel")
RECENT_RUNS = 50
CHECK_RESULTS = 10

# The tree -----------------------------------------------------------------------------------------


def template_summary(template: dict[str, Any]) -> str:
    """What a template does, in a few words, for its box."""
    kind = template.get("templateType", "")
    if kind in KINDS:
        chaos = template.get(embed_key(kind)) or {}
        field = KINDS[kind].action_field
        action = str(chaos.get(field, "")) if field else ""
        return f"{action} for {chaos['duration']}".strip() if chaos.get("duration") else action
    if kind == "Suspend":
        return f"waits {template.get('deadline', '')}"
    if kind == "Schedule":
        return f"fires on {(template.get('schedule') or {}).get('schedule', '')}"
    if kind == "StatusCheck":
        check = template.get("statusCheck") or {}
        abort = ", aborts the workflow on failure" if template.get("abortWithStatusCheck") else ""
        return f"{check.get('type', '')} check{abort}"
    return ""


def template_tree(spec: dict[str, Any]) -> dict[str, Any] | None:
    """A workflow's tree from its spec: nested {name, type, deadline, path, what, branch, children}."""
    templates = {t.get("name"): t for t in spec.get("templates", []) if isinstance(t, dict)}

    def make(name: str, parent: str, depth: int) -> dict[str, Any]:
        template = templates.get(name, {})
        path_ = f"{parent}/{name}" if parent else name
        kind = template.get("templateType", "")
        children = template.get("children", []) if depth < 50 else []
        return {"name": name, "type": kind, "deadline": template.get("deadline", ""), "path": path_,
                "what": template_summary(template), "branch": kind in BRANCHES,
                "children": [make(child, path_, depth + 1) for child in children]}

    return make(spec["entry"], "", 0) if spec.get("entry") in templates else None


def run_tree(wr: WorkflowRun, nodes: list[WorkflowNode], runs: dict[int, list[Run]],
             checks: dict[int, list[CheckRun]]) -> dict[str, Any] | None:
    """A workflow run's tree from its nodes, each with its phase, times, runs and checks."""
    templates = {t.get("name"): t for t in wr.spec.get("templates", []) if isinstance(t, dict)}
    children: dict[int | None, list[WorkflowNode]] = defaultdict(list)
    for node in nodes:
        children[node.parent_id].append(node)

    def make(node: WorkflowNode) -> dict[str, Any]:
        template = templates.get(node.name, {})
        return {"name": node.name, "type": node.template_type, "deadline": template.get("deadline", ""),
                "path": node.path, "what": template_summary(template), "branch": node.template_type in BRANCHES,
                "node": node, "phase": node.phase, "runs": runs.get(node.pk, []), "checks": checks.get(node.pk, []),
                "children": [make(c) for c in sorted(children[node.pk], key=lambda c: (c.position, c.pk))]}

    roots = children[None]
    return make(roots[0]) if roots else None


def workflow_yaml(workflow: Workflow) -> str:
    """The workflow as a Chaos Mesh manifest (what the API's manifest endpoint returns)."""
    definition = workflows.definition_of(workflow.name, workflow.namespace, workflow.spec)
    annotations = {DESCRIPTION_ANNOTATION: workflow.description} if workflow.description else {}
    meta = dataclasses.replace(definition.meta, labels=dict(workflow.labels), annotations=annotations)
    return manifests.dump([dataclasses.replace(definition, meta=meta)])




# Workflows -----------------------------------------------------------------------------------------


class WorkflowMixin(TenantPortalMixin):
    model = Workflow
    nav = "workflows"

    def workflow(self, workflow_id: Any) -> Workflow:
        return get_object_or_404(self.scoped(Workflow).select_related("created_by"), uuid=workflow_id)

    def policy_dry_run(self) -> bool:
        policy = Policy.objects.filter(tenant=self.tenant).first()
        return bool(policy and policy.dry_run_by_default)


class WorkflowsView(WorkflowMixin, TemplateView):
    template_name = "experiments/workflows.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        items = list(self.scoped(Workflow).order_by("name"))
        latest = latest_per(self.scoped(WorkflowRun).filter(workflow__in=items), "workflow_id")
        context["rows"] = [{"workflow": w, "templates": len(w.spec.get("templates", [])),
                            "entry": next((t.get("templateType") for t in w.spec.get("templates", [])
                                           if t.get("name") == w.spec.get("entry")), ""),
                            "last": latest.get(w.pk)} for w in items]
        return context


class WorkflowNewView(RequireActionOnGet, WorkflowMixin, TemplateView):
    """Create a workflow from YAML, or step by step from the tenant's experiments."""

    template_name = "experiments/workflow_new.html"
    action = "add"

    def experiments(self) -> dict[str, Experiment]:
        return {e.name: e for e in self.scoped(Experiment).order_by("name")}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        names = list(self.experiments())
        if "yaml_form" not in context:
            context["yaml_form"] = YamlWorkflowForm()
        if "steps_form" not in context:
            context["steps_form"] = StepsWorkflowForm()
            context["steps"] = StepFormSet(prefix="step", form_kwargs={"experiments": names})
        context["has_experiments"] = bool(names)
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        if request.POST.get("source") == "steps":
            return self.from_steps(request)
        form = YamlWorkflowForm(request.POST)
        if form.is_valid():
            try:
                workflow = services.save_workflow(self.actor, self.tenant, form.service_data)
            except ValidationError as error:
                form.add_service_error(error)
            else:
                return self.created(workflow)
        return self.render_to_response(self.get_context_data(yaml_form=form), status=400)

    def from_steps(self, request: HttpRequest) -> HttpResponse:
        experiments = self.experiments()
        form = StepsWorkflowForm(request.POST)
        steps = StepFormSet(request.POST, prefix="step", form_kwargs={"experiments": list(experiments)})
        if form.is_valid() and steps.is_valid():
            chosen = [(i, s.cleaned_data) for i, s in enumerate(steps.forms) if s.cleaned_data]
            if not chosen:
                form.add_error(None, "Add at least one step: an experiment or a suspend.")
            else:
                spec = steps_spec(form.cleaned_data["mode"], [
                    (experiments[d["experiment"]] if d["kind"] == "experiment" else None, d["deadline"].strip())
                    for _, d in chosen])
                namespaces = {experiments[d["experiment"]].namespace for _, d in chosen if d["kind"] == "experiment"}
                data = {"name": form.cleaned_data["name"], "description": form.cleaned_data["description"],
                        "namespace": namespaces.pop() if len(namespaces) == 1 else "", "spec": spec}
                try:
                    workflow = services.save_workflow(self.actor, self.tenant, data)
                except ValidationError as error:
                    self.steps_error(form, steps, [i for i, _ in chosen], error)
                else:
                    return self.created(workflow)
        context = self.get_context_data(steps_form=form, steps=steps)
        return self.render_to_response(context, status=400)

    @staticmethod
    def steps_error(form: StepsWorkflowForm, steps: Any, rows: list[int], error: ValidationError) -> None:
        """Put `spec.templates[k].…` on the row of step k (template 0 is the entry), the rest on the form."""
        for key, errors in by_field(error).items():
            text = ValidationError(errors).messages
            if key.startswith("spec.templates["):
                index, _, rest = key[len("spec.templates["):].partition("]")
                step = int(index) - 1 if index.isdigit() else -1
                if 0 <= step < len(rows):
                    row = steps.forms[rows[step]]
                    if rest == ".deadline":
                        row.add_error("deadline", text)
                    else:
                        row.add_error("experiment" if rest.startswith(".") and rest != ".name" else None,
                                      [f"{rest.lstrip('.')}: {m}" if rest else m for m in text])
                    continue
            form.add_error("name" if key == "name" else None, [f"{key}: {m}" if key and key != "name" else m
                                                               for m in text])

    def created(self, workflow: Workflow) -> HttpResponse:
        messages.success(self.request, f"Created workflow {workflow.name}.")
        return redirect("experiments:workflow", tenant_slug=self.tenant.slug, workflow_id=workflow.uuid)


class WorkflowView(WorkflowMixin, TemplateView):
    """A workflow: its tree drawn, its YAML, its runs; operators start a run or delete it."""

    template_name = "experiments/workflow.html"

    def start_form(self, data: Any = None) -> StartRunForm:
        environments = list(Environment.objects.restrict(self.actor, "run").filter(tenant=self.tenant)
                            .order_by("name").values_list("name", flat=True))
        return StartRunForm(data, environments=environments, policy_dry_run=self.policy_dry_run())

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        workflow = self.workflow(kwargs["workflow_id"])
        can_run = at_least(self.role, Workflow.role_for("run"))
        context.update(
            workflow=workflow, tree=template_tree(workflow.spec), yaml=workflow_yaml(workflow),
            runs=list(self.scoped(WorkflowRun).filter(workflow=workflow).order_by("-created_at", "-id")[:RECENT_RUNS]),
            schedules=list(self.scoped(Schedule).filter(workflow=workflow).order_by("name")),
            can_run=can_run, can_delete=at_least(self.role, Workflow.role_for("delete")),
            start_form=kwargs.get("start_form") or (self.start_form() if can_run else None),
        )
        return context


class WorkflowRunStartView(WorkflowView):
    action = "run"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, workflow_id: Any) -> HttpResponse:
        workflow = self.workflow(workflow_id)
        form = self.start_form(request.POST)
        if form.is_valid():
            try:
                wr = workflows.start_workflow(self.actor, workflow, form.cleaned_data["environment"],
                                              dry_run=form.cleaned_data["dry_run"], origin=Run.Origin.PORTAL)
            except PermissionDenied as error:
                form.add_error("environment", str(error))
            except ValidationError as error:
                add_service_error(form, error)
            else:
                if wr.phase == WorkflowRun.Phase.FAILED:
                    messages.warning(request, f"The tenant's policy refused this run: {wr.message}")
                else:
                    what = "a dry run" if wr.dry_run else "a run"
                    messages.success(request, f"Started {what} of {workflow.name} against {wr.environment_name}.")
                return redirect("experiments:workflow-run", tenant_slug=self.tenant.slug, workflow_run_id=wr.uuid)
        context = self.get_context_data(workflow_id=workflow_id, start_form=form)
        return self.render_to_response(context, status=400)


class WorkflowDeleteView(WorkflowMixin, View):
    action = "delete"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, workflow_id: Any) -> HttpResponse:
        workflow = self.workflow(workflow_id)
        try:
            services.delete_workflow(self.actor, workflow)
        except ValidationError as error:
            messages.error(request, f"{workflow.name} was not deleted: {' '.join(error.messages)}")
            return redirect("experiments:workflow", tenant_slug=self.tenant.slug, workflow_id=workflow.uuid)
        messages.success(request, f"Deleted workflow {workflow.name}. Its runs stay in the archive; any that was "
                                  "running was aborted and its faults recovered.")
        return redirect("experiments:workflows", tenant_slug=self.tenant.slug)


# Workflow runs -------------------------------------------------------------------------------------


class WorkflowRunMixin(TenantPortalMixin):
    model = WorkflowRun
    nav = "workflows"

    def workflow_run(self, workflow_run_id: Any) -> WorkflowRun:
        return get_object_or_404(
            self.scoped(WorkflowRun).select_related("workflow", "schedule", "environment", "created_by"),
            uuid=workflow_run_id,
        )

    def parts(self, wr: WorkflowRun, *, results: bool = False) -> tuple[list[WorkflowNode], dict[int, list[Run]],
                                                                          dict[int, list[CheckRun]]]:
        """Its nodes, the runs of its fault nodes and the checks of its check nodes: three queries (four
        with the checks' results)."""
        nodes = list(wr.nodes.order_by("id"))
        runs: dict[int, list[Run]] = defaultdict(list)
        for run in self.scoped(Run).filter(workflow_node__workflow_run=wr).order_by("created_at", "id"):
            runs[run.workflow_node_id].append(run)
        checks: dict[int, list[CheckRun]] = defaultdict(list)
        query = self.scoped(CheckRun).filter(workflow_node__workflow_run=wr).order_by("created_at", "id")
        for check in query.prefetch_related("results") if results else query:
            checks[check.workflow_node_id].append(check)
        return nodes, runs, checks


class WorkflowRunView(WorkflowRunMixin, TemplateView):
    """A workflow run: the tree with each node's state (live while it runs), its runs, checks and events."""

    template_name = "experiments/workflow_run.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        wr = self.workflow_run(kwargs["workflow_run_id"])
        nodes, runs, checks = self.parts(wr, results=True)
        paths = {n.pk: n.path for n in nodes}
        check_rows = [{"path": paths.get(c.workflow_node_id, ""), "check": c,
                       "results": list(reversed(list(c.results.all())[-CHECK_RESULTS:]))}
                      for items in checks.values() for c in items]
        context.update(
            wr=wr, tree=run_tree(wr, nodes, runs, checks), live=True,
            runs=[(paths.get(r.workflow_node_id, ""), r) for items in runs.values() for r in items],
            checks=check_rows,
            events=list(self.scoped(Event).filter(workflow_run=wr).select_related("run", "workflow_run")
                        .order_by("created_at", "id")),
            can_abort=self.is_operator and wr.phase == WorkflowRun.Phase.RUNNING,
        )
        return context


class WorkflowRunLiveView(WorkflowRunMixin, View):
    """GET: the workflow run's phase and every node's state, as JSON for workflows.js."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest, tenant_slug: str, workflow_run_id: Any) -> HttpResponse:
        wr = self.workflow_run(workflow_run_id)
        nodes, runs, checks = self.parts(wr)

        def when(moment: Any) -> str | None:
            return moment.isoformat() if moment else None

        body = {
            "phase": wr.phase, "ended": wr.phase in WorkflowRun.ENDED, "message": wr.message,
            "finished_at": when(wr.finished_at),
            "nodes": [{
                "path": n.path, "phase": n.phase, "message": n.message, "started_at": when(n.started_at),
                "finished_at": when(n.finished_at), "deadline": when(n.deadline),
                "runs": [{"id": str(r.uuid), "phase": r.phase,
                          "url": reverse("experiments:run", kwargs={"tenant_slug": self.tenant.slug, "run_id": r.uuid})}
                         for r in runs.get(n.pk, [])],
                "checks": [{"name": c.name, "phase": c.phase, "probes": c.probes, "successes": c.successes,
                            "failures": c.failures} for c in checks.get(n.pk, [])],
            } for n in nodes],
        }
        response = JsonResponse(body)
        response["Cache-Control"] = "no-store"
        return response


class WorkflowRunAbortView(WorkflowRunMixin, View):
    action = "change"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, workflow_run_id: Any) -> HttpResponse:
        wr = self.workflow_run(workflow_run_id)
        if workflows.abort(self.actor, wr):
            messages.warning(request, f"Aborted this run of {wr.workflow_name}: every node stopped and its faults "
                                      "are being recovered.")
        else:
            wr.refresh_from_db(fields=["phase"])
            messages.info(request, f"This run had already ended ({wr.phase}): there was nothing to abort.")
        return redirect("experiments:workflow-run", tenant_slug=self.tenant.slug, workflow_run_id=wr.uuid)


urlpatterns = [
    path("workflows/", WorkflowsView.as_view(), name="workflows"),
    path("workflows/new/", WorkflowNewView.as_view(), name="workflow-new"),
    path("workflows/<uuid:workflow_id>/", WorkflowView.as_view(), name="workflow"),
    path("workflows/<uuid:workflow_id>/start/", WorkflowRunStartView.as_view(), name="workflow-run-start"),
    path("workflows/<uuid:workflow_id>/delete/", WorkflowDeleteView.as_view(), name="workflow-delete"),
    path("workflow-runs/<uuid:workflow_run_id>/", WorkflowRunView.as_view(), name="workflow-run"),
    path("workflow-runs/<uuid:workflow_run_id>/live/", WorkflowRunLiveView.as_view(), name="workflow-run-live"),
    path("workflow-runs/<uuid:workflow_run_id>/abort/", WorkflowRunAbortView.as_view(), name="workflow-run-abort"),
]
