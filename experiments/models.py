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
    """Runs an experiment or a workflow on a cron schedule (the scheduler comes with its own issue)."""

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
    concurrency_policy = models.CharField(max_length=8, choices=ConcurrencyPolicy.choices, default="Forbid")
    history_limit = models.PositiveIntegerField(null=True, blank=True)
    starting_deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    paused = models.BooleanField(default=False)

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

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
