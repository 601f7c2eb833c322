"""Shapes of schedules, workflows, workflow runs and status-check runs over the API. Requests are
checked for shape here; what they mean (cron, time zone, names, the workflow spec) is checked by
experiments.services, whose errors name the field the same way."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from injector import manifests
from injector.faults.params import FieldError

from ..models import NAME_LENGTH, CheckResult, CheckRun, Event, Run, Schedule, Workflow, WorkflowNode, WorkflowRun

#: How many of a schedule's runs, workflow runs and events its detail shows (newest first).
RECENT_RUNS = 20
RECENT_EVENTS = 50
NEXT_FIRE_TIMES = 5


def _checked(kind: Any, value: str, what: str) -> str:
    """`value` checked by the manifests' own type (names and namespaces must export to Chaos Mesh)."""
    try:
        return kind.parse(value, what)
    except FieldError as error:
        raise serializers.ValidationError(error.message) from None


class LabelsField(serializers.DictField):
    child = serializers.CharField(max_length=63, allow_blank=True)


# Status checks -------------------------------------------------------------------------------------


class CheckResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = CheckResult
        fields = ["at", "ok", "latency_ms", "detail"]
        read_only_fields = fields


class CheckRunSerializer(serializers.ModelSerializer):
    """One execution of a status check, with its kept probes (oldest first)."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    results = CheckResultSerializer(many=True, read_only=True)
    phase = serializers.CharField(read_only=True, help_text="running, succeeded, failed or stopped.")

    class Meta:
        model = CheckRun
        fields = [
            "id", "name", "purpose", "abort", "phase", "message", "successes", "failures", "probes", "spec",
            "created_at", "ends_at", "finished_at", "results",
        ]
        read_only_fields = fields


# Timeline --------------------------------------------------------------------------------------------


class TimelineEventSerializer(serializers.ModelSerializer):
    """An event, with the run or workflow run it concerns (a schedule's ScheduleFired names it)."""

    run = serializers.UUIDField(source="run.uuid", read_only=True, allow_null=True, default=None)
    workflow_run = serializers.UUIDField(source="workflow_run.uuid", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Event
        fields = ["created_at", "type", "reason", "message", "object_type", "object_id", "run", "workflow_run"]
        read_only_fields = fields


class RecentRunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)

    class Meta:
        model = Run
        fields = ["id", "phase", "dry_run", "created_at", "finished_at"]
        read_only_fields = fields


class RecentWorkflowRunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    phase = serializers.CharField(read_only=True, help_text="running, succeeded, failed or aborted.")

    class Meta:
        model = WorkflowRun
        fields = ["id", "phase", "dry_run", "created_at", "finished_at"]
        read_only_fields = fields


# Schedules -------------------------------------------------------------------------------------------


class ScheduleSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    experiment = serializers.CharField(source="experiment.name", read_only=True, allow_null=True, default=None)
    workflow = serializers.CharField(source="workflow.name", read_only=True, allow_null=True, default=None)
    environment = serializers.CharField(source="environment.name", read_only=True, allow_null=True, default=None)
    dry_run = serializers.BooleanField(
        read_only=True, allow_null=True, help_text="null: the tenant policy's dry_run_by_default decides at each tick."
    )
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    next_fire_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null while paused.")

    class Meta:
        model = Schedule
        fields = [
            "id", "name", "description", "namespace", "labels", "cron", "time_zone", "experiment", "workflow",
            "environment", "dry_run", "concurrency_policy", "history_limit", "starting_deadline_seconds", "paused",
            "next_fire_at", "last_fire_at", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ScheduleDetailSerializer(ScheduleSerializer):
    """A schedule with its coming ticks, its cron in words, and what it did lately."""

    next_fire_times = serializers.SerializerMethodField(help_text="The next 5 ticks (UTC); none while paused.")
    description_text = serializers.SerializerMethodField(help_text="The cron expression in words.")
    runs = serializers.SerializerMethodField(help_text="Its runs, newest first (at most 20).")
    workflow_runs = serializers.SerializerMethodField(help_text="Its workflow runs, newest first (at most 20).")
    events = serializers.SerializerMethodField(help_text="Its events (ticks fired, missed, refused), newest first.")

    class Meta(ScheduleSerializer.Meta):
        fields = [*ScheduleSerializer.Meta.fields, "next_fire_times", "description_text", "runs", "workflow_runs",
                  "events"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_fire_times(self, schedule: Schedule) -> list[Any]:
        from .. import scheduling

        try:
            times = scheduling.next_times(schedule, NEXT_FIRE_TIMES)
        except DjangoValidationError:  # a stored cron the parser no longer reads: the sweep pauses it
            return []
        field = serializers.DateTimeField()
        return [field.to_representation(t) for t in times]

    def get_description_text(self, schedule: Schedule) -> str:
        from injector import cron

        try:
            return cron.describe(schedule.cron)
        except AttributeError:  # injector.cron without describe() yet: the expression speaks for itself
            return schedule.cron
        except cron.CronError:
            return schedule.cron

    @extend_schema_field(RecentRunSerializer(many=True))
    def get_runs(self, schedule: Schedule) -> Any:
        rows = Run.objects.filter(schedule=schedule).order_by("-created_at", "-id")[:RECENT_RUNS]
        return RecentRunSerializer(rows, many=True).data

    @extend_schema_field(RecentWorkflowRunSerializer(many=True))
    def get_workflow_runs(self, schedule: Schedule) -> Any:
        rows = WorkflowRun.objects.filter(schedule=schedule).order_by("-created_at", "-id")[:RECENT_RUNS]
        return RecentWorkflowRunSerializer(rows, many=True).data

    @extend_schema_field(TimelineEventSerializer(many=True))
    def get_events(self, schedule: Schedule) -> Any:
        rows = (Event.objects.filter(tenant_id=schedule.tenant_id, object_type="schedule", object_id=str(schedule.uuid))
                .select_related("run", "workflow_run").order_by("-created_at", "-id")[:RECENT_EVENTS])
        return TimelineEventSerializer(rows, many=True).data


class ScheduleWriteSerializer(serializers.Serializer):
    """A schedule as a request: names for what it runs and where; experiments.services checks the rest."""

    name = serializers.CharField(max_length=NAME_LENGTH, help_text="Cannot be changed once created.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    labels = LabelsField(required=False)
    cron = serializers.CharField(
        max_length=200,
        help_text='A cron expression (5 fields, or 6 with seconds first), @hourly and friends, or "@every 30s".',
    )
    time_zone = serializers.CharField(required=False, max_length=64, help_text="An IANA zone; default UTC.")
    experiment = serializers.CharField(required=False, allow_null=True, max_length=NAME_LENGTH,
                                       help_text="The name of the experiment to run (or give a workflow).")
    workflow = serializers.CharField(required=False, allow_null=True, max_length=NAME_LENGTH,
                                     help_text="The name of the workflow to run (or give an experiment).")
    environment = serializers.CharField(max_length=63, help_text="The name of the environment to run against.")
    dry_run = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="null (the default): the tenant policy's dry_run_by_default decides at each tick.",
    )
    concurrency_policy = serializers.ChoiceField(
        choices=Schedule.ConcurrencyPolicy.choices, required=False,
        help_text="Forbid (the default): skip a tick while a run of this schedule is active.",
    )
    history_limit = serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="How many ended runs stay on the schedule's list (all stay archived).",
    )
    starting_deadline_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="A tick later than this is skipped.",
    )
    paused = serializers.BooleanField(required=False)

    def validate_name(self, value: str) -> str:
        return _checked(manifests.NAME, value, "name")

    def validate_time_zone(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must not be empty: an IANA time zone such as UTC or Europe/Berlin")
        return value


# Workflows -------------------------------------------------------------------------------------------


class WorkflowSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    spec = serializers.JSONField(read_only=True, help_text="Chaos Mesh's Workflow spec: entry and templates.")

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "namespace", "labels", "spec", "created_by", "created_at", "updated_at"]
        read_only_fields = fields


class WorkflowWriteSerializer(serializers.Serializer):
    """A workflow as a request; the spec is checked by the catalogue (errors `spec.templates[0]...`)."""

    name = serializers.CharField(max_length=NAME_LENGTH, help_text="Cannot be changed once created.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    namespace = serializers.CharField(required=False, allow_blank=True, max_length=63,
                                      help_text="The default namespace of its chaos templates' selectors.")
    labels = LabelsField(required=False)
    spec = serializers.JSONField(help_text="Chaos Mesh's Workflow spec: {entry, templates: [...]}.")

    def validate_name(self, value: str) -> str:
        return _checked(manifests.NAME, value, "name")

    def validate_namespace(self, value: str) -> str:
        return _checked(manifests.NAMESPACE, value, "namespace") if value else value


class WorkflowRunStartSerializer(serializers.Serializer):
    environment = serializers.CharField(max_length=63, help_text="The name of the environment to run against.")
    dry_run = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="Every fault node resolves and selects its targets and touches nothing. "
        "Default: the tenant policy's dry_run_by_default.",
    )


# Workflow runs ---------------------------------------------------------------------------------------


class WorkflowRunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    workflow = serializers.UUIDField(source="workflow.uuid", read_only=True, allow_null=True, default=None,
                                     help_text="The workflow's id; null once it is deleted.")
    environment = serializers.CharField(source="environment_name", read_only=True)
    schedule = serializers.UUIDField(source="schedule.uuid", read_only=True, allow_null=True, default=None)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    phase = serializers.CharField(read_only=True, help_text="running, succeeded, failed or aborted.")
    archived = serializers.BooleanField(read_only=True)

    class Meta:
        model = WorkflowRun
        fields = [
            "id", "workflow", "workflow_name", "environment", "dry_run", "origin", "schedule", "phase", "message",
            "created_by", "created_at", "finished_at", "archived",
        ]
        read_only_fields = fields


class WorkflowNodeSerializer(serializers.ModelSerializer):
    """A node of a workflow run; `runs` and `checks` come from the detail's context (no query per node)."""

    phase = serializers.CharField(read_only=True, help_text="pending, running, succeeded, failed, aborted or skipped.")
    parent = serializers.SerializerMethodField(help_text="The parent node's path; null for the entry.")
    runs = serializers.SerializerMethodField(help_text="The ids of a chaos node's runs.")
    checks = serializers.SerializerMethodField(help_text="A StatusCheck node's check, with its probes.")

    class Meta:
        model = WorkflowNode
        fields = ["path", "name", "template_type", "phase", "parent", "started_at", "finished_at", "deadline",
                  "message", "runs", "checks"]
        read_only_fields = fields

    def get_parent(self, node: WorkflowNode) -> str | None:
        return self.context["paths"].get(node.parent_id)

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_runs(self, node: WorkflowNode) -> list[str]:
        return self.context["runs"].get(node.pk, [])

    @extend_schema_field(CheckRunSerializer(many=True))
    def get_checks(self, node: WorkflowNode) -> Any:
        return CheckRunSerializer(self.context["checks"].get(node.pk, []), many=True).data


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    """A workflow run with its tree (in the order the nodes were made), its events (oldest first), and
    the probes of its status checks. Constant queries: nodes, runs, checks, results, events."""

    spec = serializers.JSONField(read_only=True, help_text="The workflow as it was when the run started.")
    nodes = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta(WorkflowRunSerializer.Meta):
        fields = [*WorkflowRunSerializer.Meta.fields, "namespace", "spec", "nodes", "events"]
        read_only_fields = fields

    @extend_schema_field(WorkflowNodeSerializer(many=True))
    def get_nodes(self, wr: WorkflowRun) -> Any:
        nodes = list(wr.nodes.order_by("id"))
        runs: dict[int, list[str]] = {}
        for node_id, key in (Run.objects.filter(workflow_node__workflow_run=wr).order_by("created_at", "id")
                             .values_list("workflow_node_id", "uuid")):
            runs.setdefault(node_id, []).append(str(key))
        checks: dict[int, list[CheckRun]] = {}
        for check in (CheckRun.objects.filter(workflow_node__workflow_run=wr).order_by("created_at", "id")
                      .prefetch_related("results")):
            checks.setdefault(check.workflow_node_id, []).append(check)
        context = {"paths": {n.pk: n.path for n in nodes}, "runs": runs, "checks": checks}
        return WorkflowNodeSerializer(nodes, many=True, context=context).data

    @extend_schema_field(TimelineEventSerializer(many=True))
    def get_events(self, wr: WorkflowRun) -> Any:
        rows = wr.events.select_related("run", "workflow_run").order_by("created_at", "id")
        return TimelineEventSerializer(rows, many=True).data
