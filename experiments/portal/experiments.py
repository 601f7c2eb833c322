"""Portal pages: experiments. The list (with the API's filters), the catalogue of kinds and actions, the
form generated from it (experiments.portal.experiment_form) with a live preview of the targets and of the
manifest, the import of pasted manifests, an experiment's page, and its run, dry run, edit and delete.

Thin: scoping and roles come from TenantPortalMixin, the work from experiments.services and
experiments.runs, the targets from the environment's driver (as a run selects them)."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView

from injector.environments import compatibility_error
from injector.faults import KINDS, SelectorKind
from injector.manifests import ExperimentDefinition, ManifestErrors
from injector.models import Environment
from injector.selection import Mode
from tenants.models import Policy
from tenants.portal import TenantPortalMixin
from tenants.roles import at_least

from .. import runs, services
from ..filters import ExperimentFilterSet
from ..models import Experiment, Run, Schedule
from . import latest_per
from .experiment_form import STATUS_CHECKS_EXAMPLE, ExperimentForm, PostedValues, StoredValues
from .experiment_preview import check, errors_of, manifest_answer, preview_targets

PAGE_SIZE = 50
RECENT_RUNS = 20
FILTER_LABELS = {
    "kind": ("Kind", None),
    "label": ("Label", "key=value, or a key alone."),
    "q": ("Text", "In the name or the description."),
}


# What the pages show ------------------------------------------------------------------------------


def mode_text(mode: str, value: Any) -> str:
    if not mode:
        return "the resource its parameters name"
    return {
        Mode.ONE: "one at random",
        Mode.ALL: "all",
        Mode.FIXED: f"{value} at random",
        Mode.FIXED_PERCENT: f"{value}% at random",
        Mode.RANDOM_MAX_PERCENT: f"up to {value}% at random",
    }.get(mode, mode)


def selector_text(kind_name: str, selector: dict[str, Any] | None, namespace: str = "") -> str:
    """A selector in a few words, for the list."""
    kind = KINDS.get(kind_name)
    if kind is None or kind.selector == SelectorKind.CLOUD:
        return "the resource its parameters name"
    selector = selector or {}
    parts = []
    if selector.get("agents"):
        parts.append("agents " + ", ".join(selector["agents"]))
    if selector.get("namespaces"):
        parts.append("in " + ", ".join(selector["namespaces"]))
    if selector.get("labelSelectors"):
        parts.append(", ".join(f"{k}={v}" for k, v in selector["labelSelectors"].items()))
    others = [key for key in selector if key not in ("agents", "namespaces", "labelSelectors") and selector[key]]
    if others:
        parts.append("and " + ", ".join(others))
    if parts:
        return "; ".join(parts)
    if kind.selector == SelectorKind.HOSTS:
        return "every connected agent"
    return f"every pod in {namespace}" if namespace else "every pod"


def api_fields(experiment: Experiment) -> dict[str, Any]:
    """A stored experiment as the API's body (what the form shows when editing it)."""
    return {
        "name": experiment.name, "description": experiment.description, "namespace": experiment.namespace,
        "labels": experiment.labels, "kind": experiment.kind, "action": experiment.action,
        "params": experiment.params, "selector": experiment.selector, "mode": experiment.mode,
        "value": "" if experiment.mode_value is None else str(experiment.mode_value),
        "duration": experiment.duration, "status_checks": experiment.status_checks or None,
    }


# Pages --------------------------------------------------------------------------------------------


class ExperimentMixin(TenantPortalMixin):
    model = Experiment
    nav = "experiments"

    def experiment(self, experiment_id: Any) -> Experiment:
        return get_object_or_404(self.scoped(Experiment).select_related("created_by"), uuid=experiment_id)

    def require_action(self) -> None:
        """A GET of a form: the role of what it does, so a viewer never gets a form that fails."""
        if not at_least(self.role, self.model.role_for(self.action)):
            raise PermissionDenied(f"Your role in {self.tenant.slug} ({self.role}) cannot {self.action} experiments.")

    def environments(self) -> QuerySet:
        return self.scoped(Environment).order_by("name")


class ExperimentListView(ExperimentMixin, TemplateView):
    """The tenant's experiments, with the API's filters and each one's last run."""

    template_name = "experiments/experiment_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        queryset = self.scoped(Experiment).order_by("name")
        filters = ExperimentFilterSet(self.request.GET or None, queryset=queryset)
        for name, (label, help_text) in FILTER_LABELS.items():
            field = filters.form.fields[name]
            field.label, field.help_text = label, help_text or ""
        filters.form.fields["kind"].widget = forms.Select(choices=[("", "Any kind"), *[(k.name, f"{k.label} ({k.name})")
                                                                 for k in KINDS.values()]])
        experiments = filters.qs if not filters.is_bound or filters.is_valid() else queryset.none()
        page = Paginator(experiments, PAGE_SIZE).get_page(self.request.GET.get("page"))
        rows = list(page.object_list)
        # The newest run of each experiment on the page, in one query.
        last = latest_per(self.scoped(Run).filter(experiment__in=[e.pk for e in rows]), "experiment_id")
        query = {k: v for k, v in self.request.GET.items() if k in filters.form.fields and v}
        context.update(
            filters=filters,
            page=page,
            filter_query=urlencode(query),
            is_filtered=bool(query),
            rows=[
                {
                    "experiment": e,
                    "kind": KINDS.get(e.kind),
                    "targets": selector_text(e.kind, e.selector, e.namespace),
                    "mode": mode_text(e.mode, e.mode_value),
                    "last": last.get(e.pk),
                }
                for e in rows
            ],
        )
        return context


class ExperimentFormMixin(ExperimentMixin):
    """The generated form: shown, re-shown for another kind or action (the `switch` button, or its page's
    script asking for the `partial`), and saved through the service the API uses."""

    experiment_obj: Experiment | None = None

    def form_url(self) -> str:
        raise NotImplementedError

    def posted_form(self) -> ExperimentForm:
        post = self.request.POST
        form = ExperimentForm(PostedValues(post), post.get("kind"), post.get("action"))
        added = post.get("add_row")
        for node in form.flat_nodes():
            if not node.is_group and node.widget == "rows" and node.name == added:
                node.extra_rows = 1
        return form

    def render_form(self, form: ExperimentForm, *, status: int = 200, top: list[str] | None = None,
                    preview: dict[str, Any] | None = None, **extra: Any) -> HttpResponse:
        manifest, manifest_errors = manifest_answer(ExperimentForm(form.values, form.kind.name, form.action.name))
        chosen_env = self.request.POST.get("environment") or self.request.GET.get("environment") or ""
        context = self.get_context_data(
            form=form, top_errors=top or [], manifest=manifest, manifest_errors=manifest_errors, preview=preview,
            form_url=self.form_url(), experiment=self.experiment_obj, environments=list(self.environments()),
            chosen_environment=chosen_env, status_checks_example=STATUS_CHECKS_EXAMPLE, **extra,
        )
        return self.render_to_response(context, status=status)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.posted_form()
        if request.POST.get("partial"):
            html = render_to_string("experiments/experiment_form_kind.html", {"form": form}, request=request)
            return HttpResponse(html)
        if "switch" in request.POST or "add_row" in request.POST:
            return self.render_form(form)
        if "preview" in request.POST:  # the preview without the page's script: the whole page again
            return self.render_form(form, preview=self.preview(form))
        data = form.data()
        _, top = check(form, data)
        if not form.has_errors and not top:
            try:
                experiment = self.save(data)
            except ValidationError as error:
                top = form.add_errors(error)
            else:
                return redirect("experiments:experiment", tenant_slug=self.tenant.slug, experiment_id=experiment.uuid)
        return self.render_form(form, status=400, top=top)

    def preview(self, form: ExperimentForm) -> dict[str, Any]:
        # A form of its own: what the preview finds wrong shows in the preview, not as a failed save.
        probe = ExperimentForm(form.values, form.kind.name, form.action.name)
        return preview_answer(self, probe, self.request.POST.get("environment"))[0]

    def save(self, data: dict[str, Any]) -> Experiment:
        raise NotImplementedError


class ExperimentNewView(ExperimentFormMixin, TemplateView):
    """GET without a kind: the catalogue to choose from; with one: its generated form. POST: create."""

    action = "add"
    template_name = "experiments/experiment_form.html"

    def form_url(self) -> str:
        return reverse("experiments:experiment-new", kwargs={"tenant_slug": self.tenant.slug})

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.require_action()
        kind = request.GET.get("kind")
        if kind not in KINDS:
            context = self.get_context_data(kinds=list(KINDS.values()), import_text="", import_errors=[])
            return render(request, "experiments/experiment_catalogue.html", context)
        values = PostedValues({"mode": "one"})
        return self.render_form(ExperimentForm(values, kind, request.GET.get("action")))

    def save(self, data: dict[str, Any]) -> Experiment:
        experiment = services.create_experiment(self.actor, self.tenant, data)
        messages.success(self.request, f"Created experiment {experiment.name}. Run it, or dry-run it first, below.")
        return experiment


class ExperimentEditView(ExperimentFormMixin, TemplateView):
    action = "change"
    template_name = "experiments/experiment_form.html"

    def setup_experiment(self, experiment_id: Any) -> Experiment:
        self.experiment_obj = self.experiment(experiment_id)
        return self.experiment_obj

    def form_url(self) -> str:
        return reverse("experiments:experiment-edit",
                       kwargs={"tenant_slug": self.tenant.slug, "experiment_id": self.experiment_obj.uuid})

    def get(self, request: HttpRequest, tenant_slug: str, experiment_id: Any) -> HttpResponse:
        self.require_action()
        experiment = self.setup_experiment(experiment_id)
        return self.render_form(ExperimentForm(StoredValues(api_fields(experiment)), experiment.kind,
                                               experiment.action))

    def post(self, request: HttpRequest, tenant_slug: str, experiment_id: Any) -> HttpResponse:
        self.setup_experiment(experiment_id)
        return super().post(request)

    def save(self, data: dict[str, Any]) -> Experiment:
        experiment = services.update_experiment(self.actor, self.experiment_obj, data)
        messages.success(self.request, f"Saved experiment {experiment.name}. Runs started from now on use the change.")
        return experiment


def preview_answer(view: ExperimentMixin, form: ExperimentForm | None, env_name: Any,
                   definition: ExperimentDefinition | None = None) -> tuple[dict[str, Any], int]:
    """(the preview's JSON body, its status): targets and counts, or errors by field."""
    if definition is None and form is not None:
        data = form.data()
        if not data["name"]:
            form.name.errors.clear()  # the targets do not depend on the name
        definition, top = check(form, data)
        if form.has_errors or top or definition is None:
            return {"errors": errors_of(form, top)}, 400
    if not env_name:
        return {"errors": {"environment": ["choose an environment to preview the targets in"]}}, 400
    environment = view.environments().filter(name=env_name).first()
    if environment is None:
        return {"errors": {"environment": [f"{view.tenant.slug} has no environment named {env_name!r}"]}}, 400
    try:
        return preview_targets(definition, environment), 200
    except ValidationError as error:
        return {"errors": error.message_dict}, 400


class ExperimentPreviewView(ExperimentMixin, View):
    """POST the form (or the API's JSON body with an `environment`): the targets it would pick there, as
    JSON. It changes nothing, so viewers may ask too."""

    action = "view"

    def post(self, request: HttpRequest, tenant_slug: str) -> JsonResponse:
        if request.content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return JsonResponse({"errors": {"": ["the body is not JSON"]}}, status=400)
            if not isinstance(body, dict):
                return JsonResponse({"errors": {"": ["the body must be a JSON object"]}}, status=400)
            env_name = body.pop("environment", None)
            try:
                definition = services.build_definition({"name": "preview", **body})
            except ValidationError as error:
                return JsonResponse({"errors": error.message_dict}, status=400)
            answer, status = preview_answer(self, None, env_name, definition)
        else:
            post = request.POST
            form = ExperimentForm(PostedValues(post), post.get("kind"), post.get("action"))
            answer, status = preview_answer(self, form, post.get("environment"))
        return JsonResponse(answer, status=status)


class ExperimentYamlView(ExperimentMixin, View):
    """POST the form: the Chaos Mesh manifest of what it holds, or its errors by field, as JSON."""

    action = "view"

    def post(self, request: HttpRequest, tenant_slug: str) -> JsonResponse:
        post = request.POST
        manifest, errors = manifest_answer(ExperimentForm(PostedValues(post), post.get("kind"), post.get("action")))
        if errors:
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse({"yaml": manifest})


class ExperimentImportView(ExperimentNewView):
    """POST a pasted manifest: everything in it is created (experiments, schedules, workflows, status
    checks), or nothing, and every error is listed with its document and path."""

    action = "add"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        text = request.POST.get("manifest", "")
        try:
            plan = services.import_manifests(self.actor, self.tenant, text)
        except ManifestErrors as error:
            problems = [e.as_dict() for e in error.errors]
            kind = request.POST.get("back_kind")
            if kind in KINDS:  # pasted in the YAML tab of a form: back to that tab
                form = ExperimentForm(PostedValues({"mode": "one"}), kind, request.POST.get("back_action"))
                return self.render_form(form, status=400, tab="yaml", import_text=text, import_errors=problems)
            context = self.get_context_data(kinds=list(KINDS.values()), import_text=text, import_errors=problems)
            return render(request, "experiments/experiment_catalogue.html", context, status=400)
        made = iter(plan.objects)
        created = []
        for item in plan.items:
            if item["action"] == "skip":
                messages.info(request, f"Skipped {item['type']} {item['name']} (document {item['document']}): "
                                       f"{item['reason']}")
                continue
            obj = next(made)
            created.append(obj)
            note = " (paused: give it an environment to run against)" if isinstance(obj, Schedule) else ""
            messages.success(request, f"Created {item['type']} {item['name']} from document {item['document']}{note}.")
        experiments = [o for o in created if isinstance(o, Experiment)]
        if len(created) == 1 and experiments:
            return redirect("experiments:experiment", tenant_slug=self.tenant.slug, experiment_id=experiments[0].uuid)
        return redirect("experiments:experiments", tenant_slug=self.tenant.slug)


class ExperimentView(ExperimentMixin, TemplateView):
    """One experiment: its definition and manifest, the targets it would pick in an environment, its
    recent runs, the schedules that run it; for operators, run, dry run, edit and delete."""

    template_name = "experiments/experiment_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        experiment = self.experiment(self.kwargs["experiment_id"])
        kind = KINDS[experiment.kind]
        environments = list(self.environments())
        compatible = [e for e in environments if compatibility_error(e, kind) is None]
        runnable = []
        if self.is_operator:
            allowed = set(Environment.objects.restrict(self.actor, "run").filter(tenant=self.tenant)
                          .values_list("pk", flat=True))
            runnable = [e for e in compatible if e.pk in allowed]
        shown = ExperimentForm(StoredValues(api_fields(experiment)), experiment.kind, experiment.action)
        chosen = self.request.GET.get("environment", "")
        preview = preview_answer(self, None, chosen, services.experiment_definition(experiment))[0] if chosen else None
        policy = self.scoped(Policy).first()
        context.update(
            experiment=experiment,
            kind=kind,
            action_spec=kind.by_action.get(experiment.action),
            shown=shown,
            targets=selector_text(experiment.kind, experiment.selector, experiment.namespace),
            mode=mode_text(experiment.mode, experiment.mode_value),
            manifest=services.experiment_manifest(experiment),
            manifest_url=reverse("experiment-manifest", kwargs={"tenant_slug": self.tenant.slug,
                                                                "id": experiment.uuid}),
            runs=list(self.scoped(Run).filter(experiment=experiment).select_related("created_by")
                      .order_by("-created_at", "-id")[:RECENT_RUNS]),
            schedules=list(self.scoped(Schedule).filter(experiment=experiment).order_by("name")),
            environments=environments,
            compatible=compatible,
            runnable=runnable,
            chosen_environment=chosen,
            preview=preview,
            dry_run_by_default=bool(policy and policy.dry_run_by_default),
        )
        return context


class ExperimentRunView(ExperimentMixin, View):
    """POST: start a run (or a dry run) against an environment, then go to the run's page. A run the
    policy refuses is recorded, and its page says why."""

    action = "run"

    def post(self, request: HttpRequest, tenant_slug: str, experiment_id: Any) -> HttpResponse:
        experiment = self.experiment(experiment_id)
        dry_run = request.POST.get("dry_run") == "true"
        environment = request.POST.get("environment", "")
        try:
            run = runs.start_run(self.actor, experiment, environment, dry_run=dry_run, origin=Run.Origin.PORTAL)
        except (ValidationError, PermissionDenied) as error:
            text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            messages.error(request, f"Could not start {experiment.name}: {text}")
            return redirect("experiments:experiment", tenant_slug=self.tenant.slug, experiment_id=experiment.uuid)
        what = "dry run" if run.dry_run else "run"
        if run.phase == Run.Phase.REFUSED:
            messages.warning(request, f"The tenant's policy refused this {what} of {experiment.name}: {run.message}")
        else:
            messages.success(request, f"Started a {what} of {experiment.name} against {run.environment_name}.")
        return redirect("experiments:run", tenant_slug=self.tenant.slug, run_id=run.uuid)


class ExperimentDeleteView(ExperimentMixin, TemplateView):
    """GET: what deleting it does, to confirm; POST: delete it (its active runs stop; all stay archived)."""

    action = "delete"
    template_name = "experiments/experiment_delete.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        experiment = self.experiment(self.kwargs["experiment_id"])
        context.update(
            experiment=experiment,
            schedules=list(self.scoped(Schedule).filter(experiment=experiment).order_by("name")),
            active_runs=self.scoped(Run).filter(experiment=experiment, phase__in=runs.STOPPABLE).count(),
        )
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.require_action()
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, tenant_slug: str, experiment_id: Any) -> HttpResponse:
        experiment = self.experiment(experiment_id)
        try:
            services.delete_experiment(self.actor, experiment)
        except ValidationError as error:
            messages.error(request, f"Could not delete {experiment.name}: {' '.join(error.messages)}")
            return redirect("experiments:experiment", tenant_slug=self.tenant.slug, experiment_id=experiment.uuid)
        messages.success(request, f"Deleted experiment {experiment.name}. Its runs stay in the archive.")
        return redirect("experiments:experiments", tenant_slug=self.tenant.slug)


urlpatterns = [
    path("experiments/", ExperimentListView.as_view(), name="experiments"),
    path("experiments/new/", ExperimentNewView.as_view(), name="experiment-new"),
    path("experiments/preview/", ExperimentPreviewView.as_view(), name="experiment-preview"),
    path("experiments/yaml/", ExperimentYamlView.as_view(), name="experiment-yaml"),
    path("experiments/import/", ExperimentImportView.as_view(), name="experiment-import"),
    path("experiments/<uuid:experiment_id>/", ExperimentView.as_view(), name="experiment"),
    path("experiments/<uuid:experiment_id>/run/", ExperimentRunView.as_view(), name="experiment-run"),
    path("experiments/<uuid:experiment_id>/edit/", ExperimentEditView.as_view(), name="experiment-edit"),
    path("experiments/<uuid:experiment_id>/delete/", ExperimentDeleteView.as_view(), name="experiment-delete"),
]
