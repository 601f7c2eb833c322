"""Workflow runs: a tree of Serial, Parallel, Suspend, chaos (Fault), StatusCheck and Schedule nodes
(Chaos Mesh's Workflow), driven by `advance`.

`advance(workflow_run_id)` is the whole engine, and it is idempotent: under a lock on the workflow
run it looks at every node and does what is due (start a child, end a node whose run, check or time
is over, stop a subtree at its deadline), then asks to be woken at the next deadline. It is called
when the run starts, when a node's run or check ends, at the eta of the next deadline, and by the
reaper, so a lost task delays a step by a sweep at most.

Deadlines propagate as in Chaos Mesh: a node's deadline is its template's `deadline` from when it
starts, never later than its parent's. A Fault node's run lasts until the node's deadline (or its
own duration, if shorter); a Suspend waits for its deadline; a Schedule node fires its schedule until
its deadline; a Serial or Parallel node past its deadline stops everything under it.

A node that fails (a fault that took no target, a check that failed) fails its parent and the
workflow, but the rest still runs: only an abort (the API, a halt, or a failing StatusCheck with
abortWithStatusCheck) stops every node and recovers every fault at once.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from injector import manifests
from injector.faults import KINDS
from injector.manifests import Meta, WorkflowDefinition
from injector.models import Environment
from tenants import audit
from tenants.actors import Actor
from tenants.models import Policy, Tenant

from . import checking, runs
from . import policy as blast
from .models import CheckRun, Event, Run, Schedule, Workflow, WorkflowNode, WorkflowRun

log = logging.getLogger(__name__)
NPhase, WPhase = WorkflowNode.Phase, WorkflowRun.Phase
BRANCHES = ("Serial", "Parallel")
#: A deadline this close counts as reached (an eta task may wake a hair early).
SLACK = timedelta(milliseconds=20)


def definition_of(name: str, namespace: str, spec: dict[str, Any]) -> WorkflowDefinition:
    return manifests.parse_workflow(Meta(name, namespace or None), spec, "spec")


def workflow_event(wr: WorkflowRun, reason: str, message: str, *, node: WorkflowNode | None = None,
                   warning: bool = False) -> Event:
    return Event.objects.create(
        tenant_id=wr.tenant_id, workflow_run=wr, reason=reason, message=message[:4000],
        type=Event.Type.WARNING if warning else Event.Type.NORMAL,
        object_type="workflownode" if node else "workflowrun", object_id=node.path if node else str(wr.uuid),
    )


# Starting ------------------------------------------------------------------------------------------


def start_workflow(
    actor: Actor, workflow: Workflow, environment: str | Environment, *, dry_run: bool | None = None,
    origin: str = Run.Origin.API, schedule: Schedule | None = None, record_refusal: bool = True,
) -> WorkflowRun:
    """Start a run of `workflow` against an environment of its tenant. The policy's run-level rules
    (time windows, concurrency) are checked now; every fault node is checked again when it starts."""
    tenant = workflow.tenant
    runs._require(actor, tenant)
    env = environment if isinstance(environment, Environment) else runs.runnable_environment(actor, tenant,
                                                                                           environment)
    definition = definition_of(workflow.name, workflow.namespace, workflow.spec)
    for node in definition.nodes:
        if node.experiment is not None:
            problem = runs.compatibility_error(env, node.experiment.kind)
            if problem:
                raise ValidationError({"environment": f"template {node.name}: {problem}"})
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        policy, _ = Policy.objects.get_or_create(tenant=tenant)
        dry = policy.dry_run_by_default if dry_run is None else bool(dry_run)
        now = timezone.now()
        refusals = [] if dry else blast.check_run(
            policy, duration_seconds=None, one_shot=True, selector_namespaces=[], now=now,
            active_runs=Run.objects.filter(tenant=tenant, phase__in=Run.ACTIVE, dry_run=False).count(),
        )
        if refusals and not record_refusal:
            raise runs.PolicyRefusal(runs._refusal_text(refusals))
        wr = WorkflowRun.objects.create(
            tenant=tenant, workflow=workflow, workflow_name=workflow.name, spec=workflow.spec,
            namespace=workflow.namespace, environment=env, environment_name=env.name, dry_run=dry, origin=origin,
            schedule=schedule, created_by=actor.user if actor.user is not None and actor.user.is_authenticated
            else None, phase=WPhase.FAILED if refusals else WPhase.RUNNING,
            message=runs._refusal_text(refusals), finished_at=now if refusals else None,
        )
        _materialize(wr, definition)
        what = "dry run" if dry else "run"
        workflow_event(wr, "WorkflowStarted", f"{what} of workflow {workflow.name} against {env.name} "
                                              f"started by {actor}")
        if refusals:
            workflow_event(wr, "PolicyRefused", wr.message, warning=True)
            wr.nodes.update(phase=NPhase.SKIPPED)
        audit.record(actor, tenant, "workflowrun.start", wr, object_id=wr.uuid,
                     after={"workflow": workflow.name, "environment": env.name, "dry_run": dry, "origin": origin})
        if not refusals:
            publish_advance(wr.pk)
    return wr


def _materialize(wr: WorkflowRun, definition: WorkflowDefinition) -> None:
    templates = {n.name: n for n in definition.nodes}

    def make(name: str, parent: WorkflowNode | None, position: int) -> None:
        template = templates[name]
        path = f"{parent.path}/{name}" if parent else name
        node = WorkflowNode.objects.create(
            workflow_run=wr, parent=parent, position=position, path=path[:2000], name=name,
            template_type=template.template_type,
        )
        for index, child in enumerate(template.children):
            make(child, node, index)

    make(definition.entry, None, 0)


def publish_advance(wr_id: int, eta: datetime | None = None) -> None:
    from . import tasks

    if eta is None:
        transaction.on_commit(lambda: tasks.advance_workflow.delay(wr_id))
    else:
        transaction.on_commit(lambda: tasks.advance_workflow.apply_async((wr_id,), eta=eta))


# The engine ----------------------------------------------------------------------------------------


class _Pass:
    """One look at a workflow run, under its lock."""

    def __init__(self, wr: WorkflowRun) -> None:
        self.wr = wr
        self.now = timezone.now()
        self.definition = definition_of(wr.workflow_name, wr.namespace, wr.spec)
        self.templates = {n.name: n for n in self.definition.nodes}
        self.nodes = list(wr.nodes.order_by("id"))
        self.children: dict[int | None, list[WorkflowNode]] = {}
        for node in self.nodes:
            self.children.setdefault(node.parent_id, []).append(node)
        for siblings in self.children.values():
            siblings.sort(key=lambda n: n.position)
        self.changed = False
        self.actor = Actor.system_actor(f"workflow:{wr.workflow_name}")

    @property
    def root(self) -> WorkflowNode:
        return self.children[None][0]

    def save(self, node: WorkflowNode, *fields: str) -> None:
        node.save(update_fields=list(fields))
        self.changed = True

    # Transitions

    def start(self, node: WorkflowNode, parent: WorkflowNode | None) -> None:
        template = self.templates[node.name]
        node.phase, node.started_at = NPhase.RUNNING, self.now
        own = self.now + timedelta(seconds=template.deadline.nanoseconds / 1e9) if template.deadline else None
        bounds = [d for d in (own, parent.deadline if parent else None) if d is not None]
        node.deadline = min(bounds) if bounds else None
        self.save(node, "phase", "started_at", "deadline")
        workflow_event(self.wr, "NodeStarted", f"{node.template_type} {node.path} started"
                       + (f", deadline {node.deadline:%H:%M:%S.%f}"[:-3] + " UTC" if node.deadline else ""), node=node)
        try:
            if template.experiment is not None:
                self._start_fault(node, template)
            elif template.template_type == "StatusCheck":
                check = checking.create(
                    self.wr.tenant_id, f"{self.wr.workflow_name}/{node.name}",
                    manifests.STATUS_CHECK_SPEC.dump(template.status_check), CheckRun.Purpose.NODE, node=node,
                    abort=template.abort_with_status_check, until=node.deadline,
                )
                checking.publish(check.pk)
            elif template.template_type == "Schedule":
                self._start_schedule(node, template)
        except (ValidationError, PermissionDenied, runs.PolicyRefusal) as error:
            self.end(node, NPhase.FAILED, _text(error))

    def _start_fault(self, node: WorkflowNode, template: Any) -> None:
        definition = template.experiment
        snap = {"name": f"{self.wr.workflow_name}/{node.name}", "description": "", "namespace":
                definition.meta.namespace or self.wr.namespace, "labels": dict(definition.meta.labels),
                "spec": definition.spec(), "kind": definition.kind.name}
        if self.wr.environment is None:
            raise ValidationError({"environment": "the workflow run's environment was deleted"})
        left = (node.deadline - self.now).total_seconds() if node.deadline else None
        run = runs.launch(
            self.actor, self.wr.tenant, definition, snap, self.wr.environment, dry_run=self.wr.dry_run,
            origin=Run.Origin.WORKFLOW, workflow_node=node, max_seconds=left,
        )
        if run.phase == Run.Phase.REFUSED:
            self.end(node, NPhase.FAILED, run.message)

    def _start_schedule(self, node: WorkflowNode, template: Any) -> None:
        from . import scheduling

        if node.deadline is None:
            raise ValidationError({"deadline": f"the Schedule template {node.name} needs a deadline (or a parent's)"})
        definition = template.schedule
        if definition.experiment is None:
            raise ValidationError({"schedule": "a Schedule node runs a chaos experiment, not a workflow"})
        scheduling.start_node_schedule(self.wr, node, definition)

    def end(self, node: WorkflowNode, phase: str, message: str = "") -> None:
        if node.phase in WorkflowNode.ENDED:
            return
        node.phase, node.finished_at, node.message = phase, self.now, message[:4000]
        self.save(node, "phase", "finished_at", "message")
        warning = phase in (NPhase.FAILED, NPhase.ABORTED)
        text = f"{node.template_type} {node.path} {phase}" + (f": {message}" if message else "")
        workflow_event(self.wr, {NPhase.SUCCEEDED: "NodeSucceeded", NPhase.FAILED: "NodeFailed",
                                 NPhase.ABORTED: "NodeAborted", NPhase.SKIPPED: "NodeSkipped"}[phase],
                       text, node=node, warning=warning)

    def stop_subtree(self, node: WorkflowNode, reason: str) -> bool:
        """Stop what runs under `node` (its runs, checks, schedules); True when nothing is left running
        (fault nodes end when their run has recovered)."""
        settled = True
        for child in self.children.get(node.id, []):
            if child.phase == NPhase.PENDING:
                self.end(child, NPhase.SKIPPED, reason)
            elif child.phase == NPhase.RUNNING:
                if self.stop_subtree(child, reason):
                    self.end(child, NPhase.SUCCEEDED, reason)
                else:
                    settled = False
        checking.stop_for(node=node, message=reason)
        Schedule.objects.filter(workflow_node=node).delete()
        for run in Run.objects.filter(workflow_node=node, phase__in=Run.ACTIVE):
            if run.phase in runs.STOPPABLE:
                runs.stop(self.actor, run, reason)
            settled = False
        return settled

    # Looking at a node

    def visit(self, node: WorkflowNode, parent: WorkflowNode | None) -> None:
        if node.phase != NPhase.RUNNING:
            return
        kids = self.children.get(node.id, [])
        for child in kids:
            self.visit(child, node)
        past = node.deadline is not None and self.now + SLACK >= node.deadline
        kind = node.template_type
        if kind in BRANCHES:
            if past:
                if self.stop_subtree(node, f"the deadline of {node.path} was reached"):
                    self.end(node, NPhase.SUCCEEDED, "deadline reached")
                return
            if kind == "Serial":
                for child in kids:
                    if child.phase == NPhase.PENDING:
                        self.start(child, node)
                        self.visit(child, node)
                    if child.phase not in WorkflowNode.ENDED:
                        break
            else:
                for child in kids:
                    if child.phase == NPhase.PENDING:
                        self.start(child, node)
                        self.visit(child, node)
            if all(c.phase in WorkflowNode.ENDED for c in kids):
                failed = [c.name for c in kids if c.phase == NPhase.FAILED]
                self.end(node, NPhase.FAILED if failed else NPhase.SUCCEEDED,
                         f"failed: {', '.join(failed)}" if failed else "")
        elif kind in KINDS:
            run = Run.objects.filter(workflow_node=node).order_by("-id").first()
            if run is None:
                self.end(node, NPhase.FAILED, "its run did not start")
            elif run.phase in Run.ENDED:
                ok = run.phase == Run.Phase.FINISHED
                self.end(node, NPhase.SUCCEEDED if ok else NPhase.FAILED, run.message)
            elif past and run.phase in runs.STOPPABLE:
                runs.stop(self.actor, run, f"the deadline of {node.path} was reached")
        elif kind == "Suspend":
            if node.deadline is None or past:
                self.end(node, NPhase.SUCCEEDED, "suspended until its deadline" if node.deadline else "no deadline")
        elif kind == "StatusCheck":
            check = CheckRun.objects.filter(workflow_node=node).order_by("-id").first()
            if check is None:
                self.end(node, NPhase.FAILED, "its check did not start")
            elif check.phase == CheckRun.Phase.SUCCEEDED:
                self.end(node, NPhase.SUCCEEDED, check.message)
            elif check.phase == CheckRun.Phase.FAILED:
                self.end(node, NPhase.FAILED, check.message)
            elif past:
                checking.stop_for(node=node, message="deadline reached")
                self.end(node, NPhase.SUCCEEDED, "no failure until its deadline")
        elif kind == "Schedule":
            if past and self.stop_subtree(node, f"the deadline of {node.path} was reached"):
                self.end(node, NPhase.SUCCEEDED, "its schedule ran until the deadline")

    def wake_at(self) -> datetime | None:
        # Nodes already past theirs wait for an event (their run recovering), not for the clock.
        times = [n.deadline for n in self.nodes
                 if n.phase == NPhase.RUNNING and n.deadline is not None and n.deadline > self.now + SLACK]
        return min(times) if times else None


def advance(wr_id: int) -> str:
    """Do what is due in a workflow run (see the module's docstring). Safe to call at any time."""
    with transaction.atomic():
        wr = (WorkflowRun.objects.select_for_update(of=("self",)).select_related("environment", "tenant")
              .filter(pk=wr_id).first())
        if wr is None or wr.phase != WPhase.RUNNING:
            return "not running"
        step = _Pass(wr)
        root = step.root
        for _ in range(3):  # a node that ends at once lets the next start in the same pass
            step.changed = False
            if root.phase == NPhase.PENDING:
                step.start(root, None)
            step.visit(root, None)
            if not step.changed:
                break
        if root.phase in WorkflowNode.ENDED:
            failed = [n.path for n in step.nodes if n.phase == NPhase.FAILED]
            final = WPhase.FAILED if failed else WPhase.SUCCEEDED
            message = f"failed nodes: {', '.join(failed)}" if failed else "every node succeeded"
            if WorkflowRun.objects.filter(pk=wr.pk, phase=WPhase.RUNNING).update(
                phase=final, message=message[:4000], finished_at=timezone.now(), wake_at=None
            ):
                workflow_event(wr, "WorkflowSucceeded" if final == WPhase.SUCCEEDED else "WorkflowFailed", message,
                               warning=final == WPhase.FAILED)
            return final
        wake = step.wake_at()
        if wake is not None and wake != wr.wake_at:
            WorkflowRun.objects.filter(pk=wr.pk).update(wake_at=wake)
            publish_advance(wr.pk, eta=wake)
        return "running"


def on_run_ended(run_id: int) -> None:
    wr_id = Run.objects.filter(pk=run_id).values_list("workflow_node__workflow_run_id", flat=True).first()
    if wr_id:
        advance(wr_id)


# Aborting ------------------------------------------------------------------------------------------


def abort(actor: Actor, wr: WorkflowRun, reason: str = "") -> bool:
    """Stop every node and recover every fault of the workflow run now; False if it had ended."""
    runs._require(actor, wr.tenant)
    message = reason or f"aborted by {actor}"
    with transaction.atomic():
        if not WorkflowRun.objects.filter(pk=wr.pk, phase=WPhase.RUNNING).update(
            phase=WPhase.ABORTED, message=message[:4000], finished_at=timezone.now(), wake_at=None
        ):
            return False
        now = timezone.now()
        wr.nodes.filter(phase=NPhase.RUNNING).update(phase=NPhase.ABORTED, finished_at=now, message=message[:4000])
        wr.nodes.filter(phase=NPhase.PENDING).update(phase=NPhase.SKIPPED, finished_at=now)
        CheckRun.objects.filter(workflow_node__workflow_run=wr, phase=CheckRun.Phase.RUNNING).update(
            phase=CheckRun.Phase.STOPPED, finished_at=now, next_probe_at=None, message=message[:4000]
        )
        Schedule.objects.filter(workflow_node__workflow_run=wr).delete()
        stopping = []
        for run in Run.objects.select_related("tenant").filter(workflow_node__workflow_run=wr,
                                                                phase__in=runs.STOPPABLE):
            if runs.stop(actor, run, message):
                stopping.append(run.pk)
        recovering = list(Run.objects.filter(workflow_node__workflow_run=wr, phase=Run.Phase.RECOVERING)
                          .values_list("pk", flat=True))
        workflow_event(wr, "WorkflowAborted", f"{message}: {len(stopping)} runs stopped", warning=True)
        audit.record(actor, wr.tenant, "workflowrun.abort", wr, object_id=wr.uuid,
                     after={"reason": message, "runs": len(stopping)})
    # Recover here, not behind the queue (as a halt does); the published recover tasks are the backup.
    runs._recover_now(recovering, settings.HALT_WAIT_SECONDS)
    return True


def abort_all(actor: Actor, tenant: Tenant, reason: str) -> int:
    """Abort every running workflow run of the tenant (a halt)."""
    return sum(abort(actor, wr, reason) for wr in WorkflowRun.objects.select_related("tenant").filter(
        tenant=tenant, phase=WPhase.RUNNING))


def reap(now: datetime) -> int:
    """Workflow runs due a look (a deadline passed, or quiet for a while): advanced again."""
    quiet = now - timedelta(seconds=settings.RUN_STALL_SECONDS)
    due = list(WorkflowRun.objects.filter(phase=WPhase.RUNNING, wake_at__lte=now).values_list("pk", flat=True))
    due += list(WorkflowRun.objects.filter(phase=WPhase.RUNNING, updated_at__lte=quiet)
                .values_list("pk", flat=True))
    for pk in set(due):
        advance(pk)
    return len(set(due))


def _text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        if hasattr(error, "message_dict"):
            return "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
        return " ".join(error.messages)
    return str(error)
