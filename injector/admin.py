"""Staff admin for environments and agents. Secrets are never shown (only hashes are stored), and
environments are created through create_environment, which shows the registration token once."""
from typing import Any

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from .models import Agent, Environment


@admin.register(Environment)
class EnvironmentAdmin(GuardedModelAdmin):
    list_display = ["name", "tenant", "kind", "requires_grant", "registration_prefix", "created_at"]
    list_filter = ["kind", "tenant"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = ["uuid", "registration_prefix", "registration_hash", "created_by", "created_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False  # the registration token would never be shown: use the API, the portal or the service


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "environment", "tenant", "hostname", "version", "connected", "last_heartbeat"]
    list_filter = ["connected", "tenant"]
    search_fields = ["name", "hostname", "uuid"]
    readonly_fields = [
        "uuid", "tenant", "environment", "hostname", "labels", "capabilities", "version", "connected",
        "connected_at", "last_heartbeat", "connected_gateway", "session", "credential_prefix", "credential_hash",
        "created_at",
    ]

    def has_add_permission(self, request: Any) -> bool:
        return False  # agents register themselves through the gateway
