"""WHAT and WHEN: experiments (a fault with its targets and duration), schedules, workflows, status
checks and events, per tenant. Definitions are stored in the catalogue's canonical JSON, so they
export to Chaos Mesh manifests and parse back to the same thing (injector.manifests)."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from tenants.querysets import RestrictedQuerySet, TenantOwned
from tenants.roles import Role

NAME_LENGTH = 253  # a Kubernetes object name, as in the manifests these come from


class TenantNamedObject(TenantOwned, models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=NAME_LENGTH)
    #: The Chaos Mesh namespace the definition came with: the default namespace of its selectors.
    namespace = models.CharField(max_length=63, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Experiment(TenantNamedObject):
    """A reusable fault definition: kind + action + parameters, selector + mode, duration."""

    description = models.TextField(blank=True)
    kind = models.CharField(max_length=40)
    action = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    selector = models.JSONField(null=True, blank=True)
    mode = models.CharField(max_length=24, blank=True)
    mode_value = models.PositiveIntegerField(null=True, blank=True)
    #: Canonical duration text ("30s"); empty: until stopped (or one-shot).
    duration = models.CharField(max_length=40, blank=True)
    #: The steady state: [{"name", "spec" (a canonical StatusCheck spec), "abort"}], checked before
    #: injecting (a failure refuses the run), during (stopping the run on failure when `abort`), after.
    status_checks = models.JSONField(default=list, blank=True)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="experiment_name_unique")]
        indexes = [models.Index(fields=["tenant", "kind"])]

    def spec(self) -> dict[str, Any]:
        """The Chaos Mesh spec of this experiment (what a manifest's `spec` holds)."""
        from injector.faults import KINDS

        field = KINDS[self.kind].action_field if self.kind in KINDS else "action"
        # Kinds without an action field (StressChaos, ...) infer it from their parameters.
        out: dict[str, Any] = {field: self.action} if self.action and field else {}
        if self.mode:
            out["mode"] = self.mode
            if self.mode_value is not None:
                out["value"] = str(self.mode_value)
        if self.selector is not None:
            out["selector"] = self.selector
        out.update(self.params)
        if self.duration:
            out["duration"] = self.duration
        return out


class Workflow(TenantNamedObject):
    """A tree of nodes (Chaos Mesh Workflow spec: entry + templates), stored canonically."""

    description = models.TextField(blank=True)
    spec = models.JSONField(default=dict, blank=True)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="workflow_name_unique")]


class Schedule(TenantNamedObject):
    """Runs an experiment or a workflow against an environment on a cron schedule (experiments.scheduling).

    `next_fire_at` is the scheduler's cursor: the beat sweep claims a tick by moving it forward with a
    compare-and-set, so every tick is fired once however many sweeps and workers race on it."""

    class ConcurrencyPolicy(models.TextChoices):
        FORBID = "Forbid"
        ALLOW = "Allow"

    description = models.TextField(blank=True)
    cron = models.CharField(max_length=200, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.PROTECT, related_name="schedules"
    )
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.PROTECT, related_name="schedules")
    environment = models.ForeignKey(
        "injector.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="schedules"
    )
    #: None: the tenant policy's dry_run_by_default decides at each tick.
    dry_run = models.BooleanField(null=True, blank=True)
    concurrency_policy = models.CharField(max_length=8, choices=ConcurrencyPolicy.choices, default="Forbid")
    history_limit = models.PositiveIntegerField(null=True, blank=True)
    starting_deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    #: The next tick not yet claimed (null while paused), and the last one fired.
    next_fire_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_fire_at = models.DateTimeField(null=True, blank=True)
    #: A Schedule node of a workflow run owns the schedule it started (hidden from the schedules list).
    workflow_node = models.OneToOneField(
        "WorkflowNode", null=True, blank=True, on_delete=models.CASCADE, related_name="owned_schedule"
    )

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="schedule_name_unique")]


class StatusCheck(TenantNamedObject):
    """A reusable steady-state check (Chaos Mesh StatusCheck spec), stored canonically."""

    description = models.TextField(blank=True)
    spec = models.JSONField(default=dict, blank=True)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="statuscheck_name_unique")]


class Run(TenantOwned, models.Model):
    r"""One execution of an experiment against an environment: WHAT (a snapshot of the experiment's
    definition, so editing or deleting the experiment changes nothing here), WHERE, and how far it got.

    Phases move only by compare-and-set (experiments.runs), so two workers, a reaper and a halt can
    race on one run and exactly one of them makes each change:

        pending -> injecting -> running -> recovering -> finished
                        |          |  \-> pausing -> paused -> injecting (resume)
                        |          \-> (one-shot: finished at once)
                        \-> refused (policy) | failed (no target took the fault)

    A finished, failed or refused run is archived: read-only, kept after its experiment is deleted.
    """

    class Phase(models.TextChoices):
        PENDING = "pending"
        INJECTING = "injecting"
        RUNNING = "running"
        PAUSING = "pausing"
        PAUSED = "paused"
        RECOVERING = "recovering"
        FINISHED = "finished"
        FAILED = "failed"
        REFUSED = "refused"

    class Origin(models.TextChoices):
        API = "api"
        PORTAL = "portal"
        MANIFEST = "manifest"
        SCHEDULE = "schedule"
        WORKFLOW = "workflow"

    class SteadyState(models.TextChoices):
        NONE = "", "no status checks"
        HELD = "held"
        BROKEN = "broken"
        NOT_RESTORED = "not-restored"

    ACTIVE = (Phase.PENDING, Phase.INJECTING, Phase.RUNNING, Phase.PAUSING, Phase.PAUSED, Phase.RECOVERING)
    ENDED = (Phase.FINISHED, Phase.FAILED, Phase.REFUSED)

    # Starting, pausing, stopping a run is an operator's; the grant on its environment is checked
    # when it starts (injector.models.Environment).
    action_roles = {"add": Role.OPERATOR, "change": Role.OPERATOR, "delete": Role.OWNER}

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    experiment_name = models.CharField(max_length=NAME_LENGTH)
    environment = models.ForeignKey(
        "injector.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    environment_name = models.CharField(max_length=63)
    #: The experiment as it was when the run started: kind, action, params, selector, mode, value,
    #: duration, namespace (what experiments.runs needs, and what the archive shows).
    spec = models.JSONField(default=dict)
    kind = models.CharField(max_length=40)
    action = models.CharField(max_length=40, blank=True)
    dry_run = models.BooleanField(default=False)
    one_shot = models.BooleanField(default=False)
    phase = models.CharField(max_length=12, choices=Phase.choices, default=Phase.PENDING, db_index=True)
    #: Why the run ended as it did, or what it waits for ("stopped by alice", "policy: max-targets ...").
    message = models.TextField(blank=True)
    #: The seed the mode's random choice used: the same candidates and seed pick the same targets.
    seed = models.BigIntegerField()
    candidates = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField(null=True, blank=True)
    #: When the faults come out whatever happens (eta task, reaper, and the agents' own lease).
    deadline = models.DateTimeField(db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: How it was started, and by which schedule or workflow node (null once beyond the schedule's
    #: historyLimit: the run stays archived, off the schedule's list).
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.API)
    schedule = models.ForeignKey(Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    workflow_node = models.ForeignKey(
        "WorkflowNode", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    #: The experiment's status checks: whether the steady state held through the run.
    steady_state = models.CharField(max_length=12, choices=SteadyState.choices, default="", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "phase"]), models.Index(fields=["phase", "deadline"])]

    def __str__(self) -> str:
        return f"{self.experiment_name} ({self.phase})"

    @property
    def archived(self) -> bool:
        return self.phase in self.ENDED


class Injection(models.Model):
    """One target of a run, in one round (a resume after a pause is the next round)."""

    class State(models.TextChoices):
        PENDING = "pending"
        INJECTING = "injecting"
        INJECTED = "injected"
        RECOVERING = "recovering"
        RECOVERED = "recovered"
        FAILED = "failed"  # the fault did not go in (error says why); nothing to undo
        SKIPPED = "skipped"  # stopped before it was tried
        DRY_RUN = "dry-run"  # would have been injected

    #: States in which something may be in place on the target, so recovery must visit it.
    LIVE = (State.INJECTING, State.INJECTED, State.RECOVERING)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="injections")
    round = models.PositiveSmallIntegerField(default=1)
    #: The id the fault has on its target (the agent journals it; recovery names it).
    fault_id = models.CharField(max_length=128)
    target_key = models.CharField(max_length=512)
    target_display = models.CharField(max_length=512, blank=True)
    target_namespace = models.CharField(max_length=63, blank=True)
    #: The driver's TargetRef, whole, so recovery needs no lookup of what may be gone by then.
    target = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    detail = models.TextField(blank=True)  # what was done (or would be, in a dry run)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    injected_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "round", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "fault_id"], name="injection_fault_id_unique")]
        indexes = [models.Index(fields=["run", "state"])]

    def __str__(self) -> str:
        return f"{self.target_display or self.target_key}: {self.state}"


class Event(TenantOwned, models.Model):
    """An entry on a tenant's timeline."""

    class Type(models.TextChoices):
        NORMAL = "normal"
        WARNING = "warning"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.NORMAL)
    reason = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    workflow_run = models.ForeignKey(
        "WorkflowRun", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # A schedule's (or any object's) events, for its detail page.
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class WorkflowRun(TenantOwned, models.Model):
    """One execution of a workflow against an environment: its tree of nodes (WorkflowNode), each
    with its phase and times. Phases move by compare-and-set (experiments.workflows)."""

    class Phase(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # a node failed (a fault that took no target, a check that failed)
        ABORTED = "aborted"  # by a user, a halt, or a status check with abortWithStatusCheck

    ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED)
    action_roles = {"add": Role.OPERATOR, "change": Role.OPERATOR, "delete": Role.OWNER}

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    workflow_name = models.CharField(max_length=NAME_LENGTH)
    #: The workflow's spec (entry + templates) and namespace as they were when the run started.
    spec = models.JSONField(default=dict)
    namespace = models.CharField(max_length=63, blank=True)
    environment = models.ForeignKey(
        "injector.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_runs"
    )
    environment_name = models.CharField(max_length=63)
    dry_run = models.BooleanField(default=False)
    origin = models.CharField(max_length=10, choices=Run.Origin.choices, default=Run.Origin.API)
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_runs"
    )
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.RUNNING, db_index=True)
    message = models.TextField(blank=True)
    #: When the engine must look again (the next node deadline); the reaper also looks after it.
    wake_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "phase"])]

    def __str__(self) -> str:
        return f"{self.workflow_name} ({self.phase})"

    @property
    def archived(self) -> bool:
        return self.phase in self.ENDED


class WorkflowNode(models.Model):
    """A node of a workflow run: one template at one place in the tree (`path`, from the entry)."""

    class Phase(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        ABORTED = "aborted"
        SKIPPED = "skipped"  # never started: the workflow ended (abort, deadline) before its turn

    ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED, Phase.SKIPPED)

    workflow_run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="nodes")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    #: Order among its siblings (a Serial runs them in this order).
    position = models.PositiveIntegerField(default=0)
    path = models.CharField(max_length=2000)
    name = models.CharField(max_length=NAME_LENGTH)
    template_type = models.CharField(max_length=40)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.PENDING)
    message = models.TextField(blank=True)
    #: Its own deadline (the template's), once started: min(started + deadline, the parent's).
    deadline = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workflow_run", "id"]
        constraints = [models.UniqueConstraint(fields=["workflow_run", "path"], name="workflow_node_path_unique")]

    def __str__(self) -> str:
        return f"{self.path}: {self.phase}"


class CheckRun(TenantOwned, models.Model):
    """One execution of a status check: for a run's steady state, a workflow's StatusCheck node, or
    a StatusCheck on its own. Its results are kept up to the spec's recordsHistoryLimit."""

    class Phase(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        STOPPED = "stopped"  # its owner ended first

    class Purpose(models.TextChoices):
        BEFORE = "before"
        DURING = "during"
        AFTER = "after"
        NODE = "node"
        STANDALONE = "standalone"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=NAME_LENGTH)
    spec = models.JSONField(default=dict)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    #: Whether a failure stops its run (abort) or aborts its workflow (abortWithStatusCheck).
    abort = models.BooleanField(default=False)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="checks")
    workflow_node = models.ForeignKey(
        WorkflowNode, null=True, blank=True, on_delete=models.CASCADE, related_name="checks"
    )
    status_check = models.ForeignKey(
        StatusCheck, null=True, blank=True, on_delete=models.SET_NULL, related_name="check_runs"
    )
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.RUNNING, db_index=True)
    message = models.TextField(blank=True)
    successes = models.PositiveIntegerField(default=0)  # consecutive
    failures = models.PositiveIntegerField(default=0)  # consecutive
    probes = models.PositiveIntegerField(default=0)
    #: Continuous: checking ends (succeeded) here; always: when the next probe is due.
    ends_at = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.phase})"


class CheckResult(models.Model):
    """One probe of a status check: when, whether it passed, how long it took, what it saw."""

    check_run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    latency_ms = models.FloatField()
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["check_run", "at", "id"]
