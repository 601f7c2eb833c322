from __future__ import annotations

from typing import Any

from rest_framework import serializers

from injector.faults import KINDS

from ..models import NAME_LENGTH, Experiment


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
            "value", "duration", "targets", "capability", "one_shot", "created_by", "created_at", "updated_at",
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


class ManifestItemSerializer(serializers.Serializer):
    document = serializers.IntegerField()
    type = serializers.CharField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["create", "skip"])
    kind = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)
    id = serializers.UUIDField(required=False)


class ManifestErrorSerializer(serializers.Serializer):
    document = serializers.IntegerField(help_text="1-based index of the YAML document (0: the whole text).")
    path = serializers.CharField(help_text="The field, e.g. spec.delay.latency.")
    message = serializers.CharField()
