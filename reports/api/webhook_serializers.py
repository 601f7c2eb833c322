"""Shapes of webhooks and their deliveries over the API. Requests are checked for shape here; what
they mean (the URL, the events, the name's uniqueness, the secret) is checked by reports.services,
whose errors name the field the same way. The URL and the secret are write-only."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import NOTIFICATION_EVENTS, Webhook, WebhookDelivery


class LastDeliverySerializer(serializers.Serializer):
    state = serializers.CharField()
    event = serializers.CharField()
    at = serializers.DateTimeField()


class WebhookSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    url_hint = serializers.CharField(read_only=True, help_text="The URL's scheme and host; the URL itself is "
                                                                "stored encrypted and never shown again.")
    has_secret = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    last_delivery = serializers.SerializerMethodField(help_text="The newest delivery, or null.")

    class Meta:
        model = Webhook
        fields = ["id", "name", "url_hint", "format", "events", "enabled", "has_secret", "created_by", "created_at",
                  "updated_at", "last_delivery"]
        read_only_fields = fields

    def get_has_secret(self, hook: Webhook) -> bool:
        return bool(hook.secret_encrypted)

    @extend_schema_field(LastDeliverySerializer(allow_null=True))
    def get_last_delivery(self, hook: Webhook) -> dict[str, Any] | None:
        # Annotated by the viewset (one query for the whole page); a fresh object has none.
        state = getattr(hook, "last_state", None)
        if state is None:
            return None
        return {"state": state, "event": hook.last_event, "at": serializers.DateTimeField().to_representation(
            hook.last_at)}


class CreatedWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, required=False,
                                   help_text="Only when Chaosplane generated it (generic format, none given): "
                                             "shown this once.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    url = serializers.CharField(max_length=2000, write_only=True,
                                help_text="http(s) URL the notifications are POSTed to. For grafana: the Grafana "
                                          "base URL, or its full .../api/annotations URL.")
    format = serializers.ChoiceField(choices=Webhook.Format.choices, required=False,
                                     help_text="generic (signed JSON, the default), slack or grafana.")
    events = serializers.ListField(child=serializers.CharField(max_length=32), required=False,
                                   help_text=f"Which of {', '.join(NOTIFICATION_EVENTS)}; empty or absent for all.")
    secret = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=500,
                                   trim_whitespace=False,
                                   help_text="generic: the HMAC signing secret (generated if absent, returned "
                                             "once); grafana: the service account token. Never shown again.")
    enabled = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    webhook = serializers.UUIDField(source="webhook.uuid", read_only=True)
    log = serializers.JSONField(read_only=True, help_text="Every attempt, oldest first: attempt, at, status, "
                                                          "error, ms, body (the response's first characters).")
    payload = serializers.JSONField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook", "event", "event_key", "state", "attempts", "next_attempt_at", "response_status",
                  "error", "duration_ms", "log", "payload", "created_at", "delivered_at"]
        read_only_fields = fields
