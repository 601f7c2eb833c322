"""Domain operations on experiments and on Chaos Mesh manifests.

Definitions are validated by the catalogue (injector.faults, injector.manifests) and stored in its
canonical JSON; every write happens in one transaction with its audit entry. Errors are Django
ValidationErrors keyed by the field of the request (`params.delay.latency`, `duration`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from injector import manifests
from injector.faults import KINDS
from injector.faults.params import FieldError, FieldErrors, flatten
from injector.manifests import (
    DESCRIPTION_ANNOTATION,
    Definition,
    ExperimentDefinition,
    ManifestError,
    ManifestErrors,
    Meta,
    PhysicalMachineDefinition,
    ScheduleDefinition,
    StatusCheckDefinition,
    WorkflowDefinition,
)
from tenants import audit
from tenants.actors import Actor
from tenants.models import Tenant
from tenants.roles import Role, at_least

from .models import CheckRun, Experiment, Run, Schedule, StatusCheck, Workflow

#: Where an error in a manifest's spec lands in the API's experiment body.
_SPEC_KEYS = {"spec.action": "action", "spec.mode": "mode", "spec.value": "value", "spec.duration": "duration"}


def _require(actor: Actor, tenant: Tenant, role: str = Role.OPERATOR) -> None:
    if not actor.is_system and not at_least(actor.role_in(tenant), role):
        raise PermissionDenied(f"this needs the {role} role in {tenant.slug}")


def _api_path(path: str) -> str:
    for prefix, name in _SPEC_KEYS.items():
        if path == prefix or path.startswith(prefix + "."):
            return name + path[len(prefix):]
    if path.startswith("spec.selector"):
        return path[len("spec."):]
    if path.startswith("spec."):
        return "params." + path[len("spec."):]
    return path


def build_definition(data: dict[str, Any]) -> ExperimentDefinition:
    """The catalogue's definition of an experiment given as API fields, or a ValidationError naming
    each bad field the way the request named it."""
    kind_name = data.get("kind")
    if kind_name not in KINDS:
        raise ValidationError({"kind": f"{kind_name!r} is not a chaos kind (one of: {', '.join(KINDS)})"})
    kind = KINDS[kind_name]
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationError({"params": "must be a map of the action's parameters"})
    spec: dict[str, Any] = dict(params)
    if kind.action_field:
        spec[kind.action_field] = data.get("action")
    for key in ("selector", "mode", "value", "duration"):
        if data.get(key) not in (None, ""):
            spec[key] = data[key]
    if kind.selector != "cloud" and "selector" not in spec:
        spec["selector"] = {}
    meta = Meta(data["name"], data.get("namespace") or None, data.get("labels") or {})
    try:
        definition = manifests.parse_chaos(kind, meta, spec, "spec")
    except (FieldError, FieldErrors) as error:
        messages: dict[str, list[str]] = {}
        for e in flatten(error):
            messages.setdefault(_api_path(e.path), []).append(e.message)
        raise ValidationError(messages) from None
    if not kind.action_field and data.get("action") not in (None, definition.fault.action.name):
        raise ValidationError({"action": f"{data['action']!r} is not what these parameters make "
                                         f"({definition.fault.action.name})"})
    return definition


def _experiment_fields(definition: ExperimentDefinition) -> dict[str, Any]:
    return {
        "namespace": definition.meta.namespace or "",
        "labels": dict(definition.meta.labels),
        "kind": definition.kind.name,
        "action": definition.fault.action.name,
        "params": definition.fault.dump(),
        "selector": definition.spec().get("selector"),
        "mode": definition.mode.mode.value if definition.mode else "",
        "mode_value": definition.mode.value if definition.mode else None,
        "duration": str(definition.duration) if definition.duration else "",
    }


def snapshot(experiment: Experiment) -> dict[str, Any]:
    return {
        "name": experiment.name,
        "description": experiment.description,
        "namespace": experiment.namespace,
        "labels": experiment.labels,
        "spec": experiment.spec(),
        "kind": experiment.kind,
        "status_checks": experiment.status_checks,
    }


def _name_taken(model: type, tenant: Tenant, name: str, exclude: Any = None) -> bool:
    queryset = model.objects.filter(tenant=tenant, name=name)
    if exclude is not None:
        queryset = queryset.exclude(pk=exclude.pk)
    return queryset.exists()


def status_checks(items: Any) -> list[dict[str, Any]]:
    """An experiment's steady state as given ([{name, spec, abort}]), checked and made canonical, or
    a ValidationError naming the field (`status_checks[0].spec.http.url`)."""
    if items in (None, ""):
        return []
    if not isinstance(items, list):
        raise ValidationError({"status_checks": "must be a list of {name, spec, abort}"})
    out, messages, names = [], {}, set()
    for index, item in enumerate(items):
        path = f"status_checks[{index}]"
        if not isinstance(item, dict):
            messages[path] = ["must be a map with name, spec and abort"]
            continue
        unknown = set(item) - {"name", "spec", "abort"}
        for key in sorted(unknown):
            messages[f"{path}.{key}"] = ["unknown field (known: name, spec, abort)"]
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 253:
            messages[f"{path}.name"] = ["is required: a name of up to 253 characters"]
        elif name in names:
            messages[f"{path}.name"] = [f"{name!r} is used twice"]
        names.add(name)
        if not isinstance(item.get("abort", False), bool):
            messages[f"{path}.abort"] = ["must be true or false"]
        try:
            spec = manifests.STATUS_CHECK_SPEC.dump(manifests.STATUS_CHECK_SPEC.parse(item.get("spec"), "spec"))
        except (FieldError, FieldErrors) as error:
            for e in flatten(error):
                messages.setdefault(f"{path}.{e.path}", []).append(e.message)
            continue
        out.append({"name": name, "spec": spec, "abort": bool(item.get("abort", False))})
    if messages:
        raise ValidationError(messages)
    return out


@transaction.atomic
def create_experiment(actor: Actor, tenant: Tenant, data: dict[str, Any]) -> Experiment:
    _require(actor, tenant)
    definition = build_definition(data)
    checks = status_checks(data.get("status_checks"))
    if _name_taken(Experiment, tenant, definition.meta.name):
        raise ValidationError({"name": f"an experiment named {definition.meta.name!r} already exists"})
    experiment = Experiment.objects.create(
        tenant=tenant,
        name=definition.meta.name,
        description=data.get("description", ""),
        created_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        status_checks=checks,
        **_experiment_fields(definition),
    )
    audit.record(actor, tenant, "experiment.create", experiment, object_id=experiment.uuid, after=snapshot(experiment))
    return experiment


@transaction.atomic
def update_experiment(actor: Actor, experiment: Experiment, data: dict[str, Any]) -> Experiment:
    _require(actor, experiment.tenant)
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    before = snapshot(experiment)
    current = {
        "name": experiment.name, "description": experiment.description, "namespace": experiment.namespace,
        "labels": experiment.labels, "kind": experiment.kind, "action": experiment.action,
        "params": experiment.params, "selector": experiment.selector, "mode": experiment.mode,
        "value": experiment.mode_value, "duration": experiment.duration,
    }
    merged = current | data
    if "kind" in data and data["kind"] != experiment.kind and "params" not in data:
        merged["params"] = {}  # another kind's parameters mean nothing here
    definition = build_definition(merged)
    if "status_checks" in data:
        experiment.status_checks = status_checks(data["status_checks"])
    if _name_taken(Experiment, experiment.tenant, definition.meta.name, exclude=experiment):
        raise ValidationError({"name": f"an experiment named {definition.meta.name!r} already exists"})
    for key, value in _experiment_fields(definition).items():
        setattr(experiment, key, value)
    experiment.name = definition.meta.name
    experiment.description = merged.get("description") or ""
    experiment.save()
    after = snapshot(experiment)
    if after != before:
        audit.record(
            actor, experiment.tenant, "experiment.update", experiment, object_id=experiment.uuid,
            before=before, after=after,
        )
    return experiment


@transaction.atomic
def delete_experiment(actor: Actor, experiment: Experiment) -> None:
    _require(actor, experiment.tenant)
    if experiment.schedules.exists():
        names = ", ".join(experiment.schedules.values_list("name", flat=True))
        raise ValidationError({"name": f"the schedules {names} run this experiment; delete them first"})
    before, key = snapshot(experiment), experiment.uuid
    from . import runs

    # As deleting a Chaos Mesh object removes its fault: the runs stop, and stay in the archive.
    for run in experiment.runs.filter(phase__in=runs.STOPPABLE).select_related("tenant"):
        runs.stop(actor, run, f"its experiment {experiment.name} was deleted by {actor}")
    experiment.delete()
    audit.record(actor, experiment.tenant, "experiment.delete", object_type="experiment", object_id=key, before=before)


def experiment_definition(experiment: Experiment) -> ExperimentDefinition:
    """The stored experiment as the catalogue's definition (it was validated on the way in)."""
    annotations = {DESCRIPTION_ANNOTATION: experiment.description} if experiment.description else {}
    meta = Meta(experiment.name, experiment.namespace or None, dict(experiment.labels), annotations)
    return manifests.parse_chaos(KINDS[experiment.kind], meta, experiment.spec(), "spec")


def experiment_manifest(experiment: Experiment) -> str:
    return manifests.dump([experiment_definition(experiment)])


# Manifests -----------------------------------------------------------------------------------------


@dataclass
class ImportPlan:
    """What a manifest makes: one entry per document, in order."""

    items: list[dict[str, Any]] = field(default_factory=list)
    objects: list[Any] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)  # runs started by an apply, in document order
    workflow_runs: list[Any] = field(default_factory=list)  # workflow runs started by an apply


MODELS = {"experiment": Experiment, "schedule": Schedule, "workflow": Workflow, "statuscheck": StatusCheck}


def _plan(tenant: Tenant, definitions: list[Definition], apply: bool = False) -> ImportPlan:
    """What importing `definitions` does. With `apply` (kubectl apply), an experiment whose name is
    taken is updated to the manifest's definition instead of being an error."""
    plan, errors = ImportPlan(), []
    for index, definition in enumerate(definitions, start=1):
        if isinstance(definition, PhysicalMachineDefinition):
            plan.items.append({
                "document": index, "type": "physicalmachine", "name": definition.meta.name, "action": "skip",
                "reason": "Chaosplane agents dial out to the gateway: install the agent on the host with its "
                "environment's token instead of registering an address.",
            })
            continue
        needed = [(definition.type, definition.meta.name)]
        if isinstance(definition, ScheduleDefinition):
            target = "experiment" if definition.experiment else "workflow"
            needed.append((target, definition.meta.name))
        action = "create"
        for kind, name in needed:
            if _name_taken(MODELS[kind], tenant, name):
                if apply and isinstance(definition, ExperimentDefinition):
                    action = "update"
                else:
                    errors.append(ManifestError(index, "metadata.name", f"a {kind} named {name!r} already exists"))
        plan.items.append({
            "document": index, "type": definition.type, "name": definition.meta.name, "action": action,
            "kind": definition.to_manifest()["kind"],
        })
    if errors:
        raise ManifestErrors(errors)
    return plan


def validate_manifests(tenant: Tenant, text: str) -> ImportPlan:
    """What importing `text` would create; raises ManifestErrors with every problem. Changes nothing."""
    return _plan(tenant, manifests.parse(text))


@transaction.atomic
def import_manifests(
    actor: Actor, tenant: Tenant, text: str, *, environment: str | None = None, dry_run: bool | None = None
) -> ImportPlan:
    """Create everything `text` holds, or nothing (ManifestErrors lists every problem).

    With `environment`, this is `kubectl apply`: an experiment that exists is updated, and every
    chaos document starts a run against that environment (plan.runs, in document order)."""
    _require(actor, tenant)
    definitions = manifests.parse(text)
    plan = _plan(tenant, definitions, apply=environment is not None)
    from . import runs

    if environment is not None:
        runs.runnable_environment(actor, tenant, environment)  # refuse before anything is written
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    for item, definition in zip([i for i in plan.items if i["action"] != "skip"],
                                [d for d in definitions if not isinstance(d, PhysicalMachineDefinition)],
                                strict=True):
        if isinstance(definition, ExperimentDefinition):
            if item["action"] == "update":
                experiment = Experiment.objects.get(tenant=tenant, name=definition.meta.name)
                experiment = update_experiment(actor, experiment, _api_fields(definition))
            else:
                experiment = _create_from(actor, tenant, definition, user)
            plan.objects.append(experiment)
            if environment is not None:
                plan.runs.append(runs.start_run(actor, experiment, environment, dry_run=dry_run,
                                                origin=Run.Origin.MANIFEST))
        elif isinstance(definition, ScheduleDefinition):
            env = runs.runnable_environment(actor, tenant, environment) if environment is not None else None
            plan.objects.append(_create_schedule(actor, tenant, definition, user, env, dry_run))
        elif isinstance(definition, WorkflowDefinition):
            workflow = _create_workflow(actor, tenant, definition, user)
            plan.objects.append(workflow)
            if environment is not None:
                from . import workflows

                plan.workflow_runs.append(workflows.start_workflow(actor, workflow, environment, dry_run=dry_run,
                                                                   origin=Run.Origin.MANIFEST))
        elif isinstance(definition, StatusCheckDefinition):
            check = StatusCheck.objects.create(
                tenant=tenant, name=definition.meta.name, namespace=definition.meta.namespace or "",
                labels=dict(definition.meta.labels), description=definition.meta.description,
                spec=definition.spec(), created_by=user,
            )
            audit.record(actor, tenant, "statuscheck.create", check, object_id=check.uuid, after={"spec": check.spec})
            plan.objects.append(check)
            if environment is not None:  # applied, as creating one in Chaos Mesh: it runs now
                from . import checking

                checking.publish(checking.create(tenant.pk, check.name, check.spec, CheckRun.Purpose.STANDALONE,
                                                 status_check=check).pk)
    return plan


def _api_fields(definition: ExperimentDefinition) -> dict[str, Any]:
    """A definition as the fields update_experiment takes (the API's names)."""
    fields = _experiment_fields(definition)
    spec = definition.spec()
    return {
        "name": definition.meta.name, "description": definition.meta.description, "namespace": fields["namespace"],
        "labels": fields["labels"], "kind": fields["kind"], "action": fields["action"], "params": fields["params"],
        "selector": spec.get("selector"), "mode": fields["mode"], "value": fields["mode_value"],
        "duration": fields["duration"],
    }


def _create_from(actor: Actor, tenant: Tenant, definition: ExperimentDefinition, user: Any) -> Experiment:
    experiment = Experiment.objects.create(
        tenant=tenant, name=definition.meta.name, description=definition.meta.description, created_by=user,
        **_experiment_fields(definition),
    )
    audit.record(actor, tenant, "experiment.create", experiment, object_id=experiment.uuid, after=snapshot(experiment))
    return experiment


def _create_workflow(actor: Actor, tenant: Tenant, definition: WorkflowDefinition, user: Any) -> Workflow:
    workflow = Workflow.objects.create(
        tenant=tenant, name=definition.meta.name, namespace=definition.meta.namespace or "",
        labels=dict(definition.meta.labels), description=definition.meta.description, spec=definition.spec(),
        created_by=user,
    )
    audit.record(actor, tenant, "workflow.create", workflow, object_id=workflow.uuid, after={"spec": workflow.spec})
    return workflow


def _create_schedule(actor: Actor, tenant: Tenant, definition: ScheduleDefinition, user: Any,
                     environment: Any = None, dry_run: bool | None = None) -> Schedule:
    """A Schedule document. Applied (with an environment) it starts ticking; imported without one it
    is kept paused until an environment is set, as there is nothing to run it against."""
    from . import scheduling

    experiment = _create_from(actor, tenant, definition.experiment, user) if definition.experiment else None
    workflow = _create_workflow(actor, tenant, definition.workflow, user) if definition.workflow else None
    schedule = Schedule(
        tenant=tenant, name=definition.meta.name, namespace=definition.meta.namespace or "",
        labels=dict(definition.meta.labels), description=definition.meta.description, cron=definition.schedule,
        experiment=experiment, workflow=workflow, concurrency_policy=definition.concurrency_policy,
        history_limit=definition.history_limit, starting_deadline_seconds=definition.starting_deadline_seconds,
        created_by=user, environment=environment, dry_run=dry_run, paused=environment is None,
    )
    scheduling.arm(schedule)
    schedule.save()
    after = {"cron": schedule.cron, "type": definition.target_type, "concurrency_policy": schedule.concurrency_policy,
             "history_limit": schedule.history_limit, "starting_deadline_seconds": schedule.starting_deadline_seconds}
    audit.record(actor, tenant, "schedule.create", schedule, object_id=schedule.uuid, after=after)
    return schedule


# Schedules -----------------------------------------------------------------------------------------

SCHEDULE_FIELDS = ("description", "cron", "time_zone", "experiment", "workflow", "environment", "dry_run",
                   "concurrency_policy", "history_limit", "starting_deadline_seconds", "paused", "labels")


def _schedule_state(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name, "cron": schedule.cron, "time_zone": schedule.time_zone,
        "experiment": schedule.experiment.name if schedule.experiment_id else None,
        "workflow": schedule.workflow.name if schedule.workflow_id else None,
        "environment": schedule.environment.name if schedule.environment_id else None,
        "dry_run": schedule.dry_run, "concurrency_policy": schedule.concurrency_policy,
        "history_limit": schedule.history_limit, "starting_deadline_seconds": schedule.starting_deadline_seconds,
        "paused": schedule.paused,
    }


def _resolve_schedule_refs(actor: Actor, tenant: Tenant, data: dict[str, Any]) -> dict[str, Any]:
    """Names in the request (experiment, workflow, environment) as rows of the tenant."""
    from . import runs

    out = dict(data)
    for key, model in (("experiment", Experiment), ("workflow", Workflow)):
        if key in data and data[key] not in (None, ""):
            row = model.objects.filter(tenant=tenant, name=data[key]).first()
            if row is None:
                raise ValidationError({key: f"{tenant.slug} has no {key} named {data[key]!r}"})
            out[key] = row
        elif key in data:
            out[key] = None
    if data.get("environment") not in (None, ""):
        out["environment"] = runs.runnable_environment(actor, tenant, data["environment"])
    elif "environment" in data:
        out["environment"] = None
    return out


@transaction.atomic
def save_schedule(actor: Actor, tenant: Tenant, data: dict[str, Any], schedule: Schedule | None = None) -> Schedule:
    """Create a schedule (schedule None) or change one: `data` holds the API's fields, with names for
    the experiment, workflow and environment. Every tick is checked against the policy."""
    from . import scheduling

    _require(actor, tenant)
    creating = schedule is None
    if creating:
        if _name_taken(Schedule, tenant, data.get("name")):
            raise ValidationError({"name": f"a schedule named {data.get('name')!r} already exists"})
        schedule = Schedule(tenant=tenant, name=data["name"], created_by=actor.user if actor.user is not None
                            and actor.user.is_authenticated else None)
        before = None
    else:
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        before = _schedule_state(schedule)
    values = _resolve_schedule_refs(actor, tenant, data)
    for key in SCHEDULE_FIELDS:
        if key in values:
            setattr(schedule, key, values[key] if values[key] is not None or key not in ("description",) else "")
    if (schedule.experiment is None) == (schedule.workflow is None):
        raise ValidationError({"experiment": "give either an experiment or a workflow to run (one of them)"})
    if creating and schedule.environment is None:
        raise ValidationError({"environment": "is required: the environment the schedule runs against"})
    if schedule.experiment is not None and schedule.environment is not None:
        from injector.environments import compatibility_error

        problem = compatibility_error(schedule.environment, KINDS[schedule.experiment.kind])
        if problem:
            raise ValidationError({"environment": problem})
    scheduling.parse(schedule.cron, schedule.time_zone)
    if creating or {"cron", "time_zone", "paused"} & set(data):
        scheduling.arm(schedule)
    schedule.save()
    after = _schedule_state(schedule)
    if creating:
        audit.record(actor, tenant, "schedule.create", schedule, object_id=schedule.uuid, after=after)
    elif after != before:
        audit.record(actor, tenant, "schedule.update", schedule, object_id=schedule.uuid, before=before, after=after)
    return schedule


def set_paused(actor: Actor, schedule: Schedule, paused: bool) -> Schedule:
    """Pause (no tick fires; active runs go on) or resume (the next tick counts from now)."""
    from . import scheduling

    _require(actor, schedule.tenant)
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        if schedule.paused == paused:
            return schedule
        schedule.paused = paused
        scheduling.arm(schedule)
        schedule.save(update_fields=["paused", "next_fire_at", "updated_at"])
        verb = "pause" if paused else "resume"
        audit.record(actor, schedule.tenant, f"schedule.{verb}", schedule, object_id=schedule.uuid)
        scheduling.schedule_event(schedule, "SchedulePaused" if paused else "ScheduleResumed", f"{verb}d by {actor}")
    return schedule


@transaction.atomic
def delete_schedule(actor: Actor, schedule: Schedule) -> None:
    """Delete a schedule; runs it started go on until their deadline, and stay archived."""
    _require(actor, schedule.tenant)
    before, key = _schedule_state(schedule), schedule.uuid
    schedule.delete()
    audit.record(actor, schedule.tenant, "schedule.delete", object_type="schedule", object_id=key, before=before)


# Workflows -----------------------------------------------------------------------------------------


def workflow_spec(name: str, namespace: str, spec: Any) -> dict[str, Any]:
    """A workflow spec (entry + templates) checked and made canonical, errors keyed `spec.templates[1]...`."""
    meta = Meta(name, namespace or None)
    try:
        return manifests.parse_workflow(meta, spec, "spec").spec()
    except (FieldError, FieldErrors) as error:
        messages: dict[str, list[str]] = {}
        for e in flatten(error):
            messages.setdefault(e.path or "spec", []).append(e.message)
        raise ValidationError(messages) from None


@transaction.atomic
def save_workflow(actor: Actor, tenant: Tenant, data: dict[str, Any], workflow: Workflow | None = None) -> Workflow:
    _require(actor, tenant)
    if workflow is None:
        if _name_taken(Workflow, tenant, data["name"]):
            raise ValidationError({"name": f"a workflow named {data['name']!r} already exists"})
        spec = workflow_spec(data["name"], data.get("namespace", ""), data.get("spec"))
        workflow = Workflow.objects.create(
            tenant=tenant, name=data["name"], namespace=data.get("namespace") or "", labels=data.get("labels") or {},
            description=data.get("description") or "", spec=spec,
            created_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        )
        audit.record(actor, tenant, "workflow.create", workflow, object_id=workflow.uuid, after={"spec": spec})
        return workflow
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    before = {"spec": workflow.spec, "description": workflow.description, "labels": workflow.labels}
    if "spec" in data:
        workflow.spec = workflow_spec(workflow.name, data.get("namespace", workflow.namespace), data["spec"])
    for key in ("description", "labels", "namespace"):
        if key in data:
            setattr(workflow, key, data[key] or ({} if key == "labels" else ""))
    workflow.save()
    after = {"spec": workflow.spec, "description": workflow.description, "labels": workflow.labels}
    if after != before:
        audit.record(actor, tenant, "workflow.update", workflow, object_id=workflow.uuid, before=before, after=after)
    return workflow


@transaction.atomic
def delete_workflow(actor: Actor, workflow: Workflow) -> None:
    """Delete a workflow; its runs are aborted (their faults recovered) and stay archived."""
    _require(actor, workflow.tenant)
    if workflow.schedules.exists():
        names = ", ".join(workflow.schedules.values_list("name", flat=True))
        raise ValidationError({"name": f"the schedules {names} run this workflow; delete them first"})
    from . import workflows

    for wr in workflow.runs.filter(phase="running").select_related("tenant"):
        workflows.abort(actor, wr, f"its workflow {workflow.name} was deleted by {actor}")
    key, before = workflow.uuid, {"spec": workflow.spec}
    workflow.delete()
    audit.record(actor, workflow.tenant, "workflow.delete", object_type="workflow", object_id=key, before=before)
