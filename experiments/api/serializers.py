from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from injector.faults import KINDS

from ..models import NAME_LENGTH, Event, Experiment, Injection, Run, WorkflowRun
from .schedule_serializers import CheckRunSerializer


class ExperimentSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    value = serializers.IntegerField(source="mode_value", read_only=True, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    targets = serializers.SerializerMethodField(help_text="What the action lands on.")
    capability = serializers.SerializerMethodField(help_text="What the executing side must be able to do.")
    one_shot = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "id", "name", "description", "namespace", "labels", "kind", "action", "params", "selector", "mode",
            "value", "duration", "status_checks", "targets", "capability", "one_shot", "created_by", "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _action(self, experiment: Experiment) -> Any:
        return KINDS[experiment.kind].by_action[experiment.action]

    def get_targets(self, experiment: Experiment) -> list[str]:
        return sorted(t.value for t in self._action(experiment).targets)

    def get_capability(self, experiment: Experiment) -> str | None:
        capability = self._action(experiment).capability
        return capability.value if capability else None

    def get_one_shot(self, experiment: Experiment) -> bool:
        return self._action(experiment).one_shot


class ExperimentWriteSerializer(serializers.Serializer):
    """The shape of a request; the catalogue validates the fault itself (services.build_definition)."""

    name = serializers.CharField(max_length=NAME_LENGTH)
    description = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    namespace = serializers.CharField(required=False, allow_blank=True, max_length=63)
    labels = serializers.DictField(child=serializers.CharField(max_length=63, allow_blank=True), required=False)
    kind = serializers.ChoiceField(choices=list(KINDS))
    action = serializers.CharField(required=False, allow_blank=True, max_length=40)
    params = serializers.DictField(required=False)
    selector = serializers.DictField(required=False, allow_null=True)
    mode = serializers.CharField(required=False, allow_blank=True)
    value = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    duration = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    status_checks = serializers.ListField(
        child=serializers.DictField(), required=False, allow_null=True,
        help_text="The steady state: [{name, spec (a StatusCheck spec), abort}]. Checked before injecting (a "
        "failure refuses the run), continuously while the faults are in (abort: stop the run on failure), and after.",
    )


class ManifestItemSerializer(serializers.Serializer):
    document = serializers.IntegerField()
    type = serializers.CharField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["create", "update", "skip"])
    kind = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)
    id = serializers.UUIDField(required=False)
    run = serializers.UUIDField(required=False, help_text="The run an apply started for this document.")
    phase = serializers.CharField(required=False, help_text="That run's phase (refused: see its message).")


class ManifestErrorSerializer(serializers.Serializer):
    document = serializers.IntegerField(help_text="1-based index of the YAML document (0: the whole text).")
    path = serializers.CharField(help_text="The field, e.g. spec.delay.latency.")
    message = serializers.CharField()


class RunStartSerializer(serializers.Serializer):
    environment = serializers.CharField(max_length=63, help_text="The name of the environment to run against.")
    dry_run = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="Resolve and select the targets, record what would be done, touch nothing. "
        "Default: the tenant policy's dry_run_by_default.",
    )


class InjectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Injection
        fields = [
            "round", "fault_id", "target_key", "target_display", "target_namespace", "state", "detail", "error",
            "attempts", "injected_at", "recovered_at",
        ]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["created_at", "type", "reason", "message"]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    experiment = serializers.SerializerMethodField(help_text="The experiment's id; null once it is deleted.")
    environment = serializers.CharField(source="environment_name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    archived = serializers.BooleanField(read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "experiment", "experiment_name", "environment", "kind", "action", "dry_run", "one_shot", "phase",
            "message", "seed", "candidates", "duration_seconds", "deadline", "created_by", "created_at",
            "started_at", "finished_at", "archived", "origin", "steady_state",
        ]
        read_only_fields = fields

    def get_experiment(self, run: Run) -> str | None:
        return str(run.experiment.uuid) if run.experiment_id and run.experiment else None


class RunDetailSerializer(RunSerializer):
    spec = serializers.JSONField(read_only=True, help_text="The experiment as it was when the run started.")
    injections = InjectionSerializer(many=True, read_only=True)
    events = serializers.SerializerMethodField()
    schedule = serializers.SerializerMethodField(help_text="The id of the schedule that started it, if one did.")
    workflow_run = serializers.SerializerMethodField(help_text="The id of the workflow run whose node started it.")
    checks = serializers.SerializerMethodField(help_text="Its status checks (before, during, after), with probes.")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "spec", "injections", "events", "schedule", "workflow_run", "checks"]
        read_only_fields = fields

    def get_events(self, run: Run) -> list[dict[str, Any]]:
        return EventSerializer(run.events.order_by("created_at", "id"), many=True).data

    def get_schedule(self, run: Run) -> str | None:
        return str(run.schedule.uuid) if run.schedule_id else None

    def get_workflow_run(self, run: Run) -> str | None:
        if run.workflow_node_id is None:
            return None
        key = WorkflowRun.objects.filter(nodes=run.workflow_node_id).values_list("uuid", flat=True).first()
        return str(key) if key else None

    @extend_schema_field(CheckRunSerializer(many=True))
    def get_checks(self, run: Run) -> Any:
        return CheckRunSerializer(run.checks.order_by("created_at", "id").prefetch_related("results"), many=True).data


class HaltSerializer(serializers.Serializer):
    halted = serializers.IntegerField(help_text="Runs moved to recovering by this call.")
    recovered = serializers.IntegerField(help_text="Runs whose faults were all recovered before the answer.")
    still_recovering = serializers.IntegerField(help_text="Runs a worker is still recovering.")
