"""Staff admin. The audit log is read-only here as everywhere."""
from typing import Any

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from .models import ApiToken, AuditEntry, Membership, Policy, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(GuardedModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "user", "role", "created_at", "expires_at", "revoked_at"]
    list_filter = ["role", "tenant"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False  # tokens are issued through the API, the portal or issue_token, which show the secret


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["tenant", "max_targets", "max_target_percent", "max_duration_seconds", "dry_run_by_default"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["tenant", "seq", "created_at", "actor_label", "action", "object_type", "object_id"]
    list_filter = ["tenant", "actor_kind"]
    search_fields = ["actor_label", "action", "object_id"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
