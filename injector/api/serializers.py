from __future__ import annotations

from typing import Any

from rest_framework import serializers

from injector import credentials

from ..models import Agent, Environment


class EnvironmentSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    config = serializers.SerializerMethodField(help_text="The settings of its kind (API URL, region...).")
    secrets_set = serializers.SerializerMethodField(help_text="Whether its secrets are set; they are never shown.")
    agents = serializers.SerializerMethodField(help_text="Registered node agents, and how many are connected.")

    class Meta:
        model = Environment
        fields = ["id", "name", "kind", "config", "secrets_set", "requires_grant", "agents", "created_at"]
        read_only_fields = fields

    def get_config(self, env: Environment) -> dict[str, Any]:
        return credentials.public_view(env.kind, env.config)

    def get_secrets_set(self, env: Environment) -> bool:
        return bool(env.secrets_encrypted)

    def get_agents(self, env: Environment) -> dict[str, int]:
        return {"registered": getattr(env, "agent_count", 0), "connected": getattr(env, "connected_count", 0)}


class EnvironmentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    kind = serializers.ChoiceField(choices=Environment.Kind.values)
    config = serializers.DictField(required=False, help_text="The settings of the kind (see docs).")
    secrets = serializers.DictField(
        required=False, write_only=True, help_text="Token, kubeconfig or keys: encrypted, never shown again."
    )
    requires_grant = serializers.BooleanField(required=False, default=False)


class EnvironmentUpdateSerializer(serializers.Serializer):
    config = serializers.DictField(required=False, help_text="The settings, given whole.")
    secrets = serializers.DictField(required=False, write_only=True, help_text="Replaces every secret; omit to keep.")
    requires_grant = serializers.BooleanField(required=False)


class EnvironmentCreatedSerializer(EnvironmentSerializer):
    registration_token = serializers.CharField(
        read_only=True, allow_null=True, help_text="For node agents (hosts, kubernetes): shown once."
    )

    class Meta(EnvironmentSerializer.Meta):
        fields = [*EnvironmentSerializer.Meta.fields, "registration_token"]
        read_only_fields = fields


class AgentSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)

    class Meta:
        model = Agent
        fields = ["id", "name", "hostname", "labels", "capabilities", "version", "connected", "connected_at",
                  "last_heartbeat"]
        read_only_fields = fields


class GrantSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
