"""Bad input gets a 400 that names the field, and changes nothing."""
from __future__ import annotations

from typing import Any

import pytest

from tenants.models import ApiToken, AuditEntry, Membership, Policy, Tenant

T = "/api/v1/tenants/acme"


def state() -> tuple:
    return (
        AuditEntry.objects.count(),
        sorted(Tenant.objects.values_list("slug", "name")),
        sorted(Membership.objects.values_list("tenant__slug", "user__username", "role")),
        sorted(ApiToken.objects.values_list("name", "role", "revoked_at")),
        sorted(Policy.objects.values_list("tenant__slug", "max_targets", "max_target_percent", "protected_namespaces")),
    )


def window(**fields: Any) -> dict[str, Any]:
    return {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "UTC"} | fields


CASES = [
    ("post", f"{T}/members/", {"username": "bob", "role": "admin"}, "role"),
    ("patch", f"{T}/members/carol/", {"role": "superuser"}, "role"),
    ("post", f"{T}/tokens/", {"name": "t", "role": "root"}, "role"),
    ("post", f"{T}/tokens/", {"name": "x" * 81, "role": "viewer"}, "name"),
    ("post", f"{T}/tokens/", {"name": "t", "role": "viewer", "expires_in_days": 0}, "expires_in_days"),
    ("post", f"{T}/tokens/", {"name": "t", "role": "viewer", "expires_in_days": "soon"}, "expires_in_days"),
    ("post", f"{T}/tokens/", {"name": "alice-owner", "role": "viewer"}, "name"),  # duplicate active name
    ("post", f"{T}/tokens/", {"role": "viewer"}, "name"),
    ("post", "/api/v1/tenants/", {"slug": "acme", "name": "Again"}, "slug"),  # duplicate slug
    ("post", "/api/v1/tenants/", {"slug": "Not A Slug"}, "slug"),
    ("post", "/api/v1/tenants/", {"slug": "s" * 64}, "slug"),
    ("post", "/api/v1/tenants/", {"slug": "ok", "name": "n" * 121}, "name"),
    ("patch", f"{T}/", {"name": "n" * 121}, "name"),
    ("patch", f"{T}/policy/", {"max_target_percent": 0}, "max_target_percent"),
    ("patch", f"{T}/policy/", {"max_targets": -1}, "max_targets"),
    ("patch", f"{T}/policy/", {"protected_namespaces": ["Kube_System"]}, "protected_namespaces"),
    ("patch", f"{T}/policy/", {"namespace_allowlist": "prod"}, "namespace_allowlist"),
    ("patch", f"{T}/policy/", {"allowed_windows": [window(start="25:00")]}, "allowed_windows"),
    ("patch", f"{T}/policy/", {"allowed_windows": [window(days=["funday"])]}, "allowed_windows"),
    ("patch", f"{T}/policy/", {"allowed_windows": [window(timezone="Mars/Base")]}, "allowed_windows"),
    ("patch", f"{T}/policy/", {"allowed_windows": [window(end="09:00")]}, "allowed_windows"),
    ("patch", f"{T}/policy/", {"dry_run_by_default": "perhaps"}, "dry_run_by_default"),
]


@pytest.mark.parametrize("method,path,body,field", CASES)
def test_bad_input_names_the_field_and_changes_nothing(world: Any, api: Any, method, path, body, field) -> None:
    before = state()

    response = getattr(api(world.owner, "session"), method)(path, body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert state() == before


@pytest.mark.parametrize("path", [f"{T}/members/", f"{T}/tokens/", f"{T}/policy/", "/api/v1/tenants/"])
def test_malformed_json_is_a_400_naming_the_body(world: Any, api: Any, path: str) -> None:
    before = state()
    client = api(world.owner, "session")
    method = client.patch if path.endswith("policy/") else client.post

    response = method(path, data='{"name": "x", "role": ', content_type="application/json")

    assert response.status_code == 400
    assert "body" in response.json() and "JSON" in response.json()["body"][0]
    assert state() == before


def test_a_valid_policy_round_trips(world: Any, api: Any) -> None:
    window = {"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}
    body = {"protected_namespaces": ["kube-system", "payments"], "allowed_windows": [window], "max_target_percent": 25}
    response = api(world.owner).put(f"{T}/policy/", body, format="json")
    assert response.status_code == 200, response.content
    got = api(world.viewer).get(f"{T}/policy/").json()
    assert got["allowed_windows"] == [window] and got["protected_namespaces"] == ["kube-system", "payments"]
    assert got["max_target_percent"] == 25
