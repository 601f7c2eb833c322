from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from tenants.models import SLUG_VALIDATOR, ApiToken, AuditEntry, Membership, Policy, Tenant
from tenants.roles import Role
from tenants.services import MAX_TOKEN_DAYS

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TenantSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in this tenant.")

    class Meta:
        model = Tenant
        fields = ["slug", "name", "created_at", "role"]
        read_only_fields = ["created_at", "role"]

    def get_role(self, tenant: Tenant) -> str | None:
        actor = self.context.get("actor")
        return actor.role_in(tenant) if actor else None


class TenantCreateSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=63, validators=[SLUG_VALIDATOR])
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)


class TenantUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = fields


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class TokenSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="prefix", read_only=True, help_text="Public id: the token's prefix.")
    user = serializers.CharField(source="user.username", read_only=True)
    state = serializers.CharField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "role", "user", "state", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    role = serializers.ChoiceField(choices=Role.choices)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=MAX_TOKEN_DAYS, required=False, allow_null=True)


class IssuedTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret. Shown this once; store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TimeWindowSerializer(serializers.Serializer):
    days = serializers.ListField(child=serializers.ChoiceField(choices=DAYS), allow_empty=False)
    start = serializers.RegexField(HHMM, error_messages={"invalid": "use HH:MM (24 h)"})
    end = serializers.RegexField(HHMM, error_messages={"invalid": "use HH:MM (24 h)"})
    timezone = serializers.CharField(max_length=64, default="UTC")

    def validate_timezone(self, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise serializers.ValidationError(f"unknown time zone {value!r}") from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": "a window must not be empty (start equals end)"})
        return attrs


class NamespaceListField(serializers.ListField):
    child = serializers.CharField(max_length=63)

    def to_internal_value(self, data: Any) -> list[str]:
        values = super().to_internal_value(data)
        for value in values:
            if not DNS_LABEL.match(value):
                raise serializers.ValidationError(f"{value!r} is not a valid namespace name (RFC 1123 label)")
        if len(set(values)) != len(values):
            raise serializers.ValidationError("namespaces must not repeat")
        return values


class PolicySerializer(serializers.ModelSerializer):
    protected_namespaces = NamespaceListField(required=False, max_length=200)
    namespace_allowlist = NamespaceListField(required=False, max_length=200)
    allowed_windows = TimeWindowSerializer(many=True, required=False)
    max_target_percent = serializers.IntegerField(min_value=1, max_value=100, required=False, allow_null=True)

    class Meta:
        model = Policy
        fields = [
            "protected_namespaces",
            "namespace_allowlist",
            "require_opt_in_annotation",
            "max_targets",
            "max_target_percent",
            "max_duration_seconds",
            "max_concurrent_runs",
            "allowed_windows",
            "dry_run_by_default",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]


class AuditEntrySerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "seq",
            "created_at",
            "tenant",
            "actor_kind",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
            "remote_addr",
            "prev_hash",
            "entry_hash",
        ]
        read_only_fields = fields
