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

from .models import Experiment, Schedule, StatusCheck, Workflow

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
    }


def _name_taken(model: type, tenant: Tenant, name: str, exclude: Any = None) -> bool:
    queryset = model.objects.filter(tenant=tenant, name=name)
    if exclude is not None:
        queryset = queryset.exclude(pk=exclude.pk)
    return queryset.exists()


@transaction.atomic
def create_experiment(actor: Actor, tenant: Tenant, data: dict[str, Any]) -> Experiment:
    _require(actor, tenant)
    definition = build_definition(data)
    if _name_taken(Experiment, tenant, definition.meta.name):
        raise ValidationError({"name": f"an experiment named {definition.meta.name!r} already exists"})
    experiment = Experiment.objects.create(
        tenant=tenant,
        name=definition.meta.name,
        description=data.get("description", ""),
        created_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
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
                plan.runs.append(runs.start_run(actor, experiment, environment, dry_run=dry_run))
        elif isinstance(definition, ScheduleDefinition):
            plan.objects.append(_create_schedule(actor, tenant, definition, user))
        elif isinstance(definition, WorkflowDefinition):
            plan.objects.append(_create_workflow(actor, tenant, definition, user))
        elif isinstance(definition, StatusCheckDefinition):
            check = StatusCheck.objects.create(
                tenant=tenant, name=definition.meta.name, namespace=definition.meta.namespace or "",
                labels=dict(definition.meta.labels), description=definition.meta.description,
                spec=definition.spec(), created_by=user,
            )
            audit.record(actor, tenant, "statuscheck.create", check, object_id=check.uuid, after={"spec": check.spec})
            plan.objects.append(check)
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


def _create_schedule(actor: Actor, tenant: Tenant, definition: ScheduleDefinition, user: Any) -> Schedule:
    experiment = _create_from(actor, tenant, definition.experiment, user) if definition.experiment else None
    workflow = _create_workflow(actor, tenant, definition.workflow, user) if definition.workflow else None
    schedule = Schedule.objects.create(
        tenant=tenant, name=definition.meta.name, namespace=definition.meta.namespace or "",
        labels=dict(definition.meta.labels), description=definition.meta.description, cron=definition.schedule,
        experiment=experiment, workflow=workflow, concurrency_policy=definition.concurrency_policy,
        history_limit=definition.history_limit, starting_deadline_seconds=definition.starting_deadline_seconds,
        created_by=user,
    )
    after = {"cron": schedule.cron, "type": definition.target_type, "concurrency_policy": schedule.concurrency_policy,
             "history_limit": schedule.history_limit, "starting_deadline_seconds": schedule.starting_deadline_seconds}
    audit.record(actor, tenant, "schedule.create", schedule, object_id=schedule.uuid, after=after)
    return schedule
