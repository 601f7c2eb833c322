"""The management commands, as a script would use them."""
from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from tenants.models import ApiToken, AuditEntry, Membership, Tenant


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_creates_the_owner_and_prints_the_password_once(db: Any) -> None:
    output = run("create_tenant", "demo", "--owner", "admin", "--name", "Demo")
    password = output.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert "shown once" in output
    assert authenticate(username="admin", password=password) is not None
    assert Membership.objects.get(tenant__slug="demo").role == "owner"
    assert Tenant.objects.get(slug="demo").policy.protected_namespaces == ["kube-system"]
    assert AuditEntry.objects.get(tenant__slug="demo").actor_kind == "system"

    second = run("create_tenant", "other", "--owner", "admin")
    assert "password" not in second


def test_create_tenant_refuses_a_duplicate_slug_unless_exist_ok(db: Any) -> None:
    run("create_tenant", "demo", "--owner", "admin")
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "demo", "--owner", "admin")
    assert run("create_tenant", "demo", "--owner", "admin", "--exist-ok") == ""


def test_create_tenant_names_a_bad_slug(db: Any) -> None:
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "Bad Slug", "--owner", "admin")
    assert not Tenant.objects.exists()


def test_issue_token_prints_the_token_alone(world: Any, api: Any) -> None:
    output = run("issue_token", "--tenant", "acme", "--user", "bob", "--role", "viewer", "--expires-in-days", "7")
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cpt_")
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {lines[0]}")
    assert client.get("/api/v1/tenants/acme/").json()["role"] == "viewer"
    assert ApiToken.objects.get(prefix=lines[0].split("_")[1]).expires_at is not None


@pytest.mark.parametrize(
    "args,field",
    [
        (["--tenant", "nope", "--user", "bob", "--role", "viewer"], "tenant"),
        (["--tenant", "acme", "--user", "nobody", "--role", "viewer"], "user"),
        (["--tenant", "acme", "--user", "bob", "--role", "owner"], "role"),
        (["--tenant", "acme", "--user", "bob", "--role", "god"], "role"),
        (["--tenant", "acme", "--user", "mallory", "--role", "viewer"], "user"),
        (["--tenant", "acme", "--user", "bob", "--role", "viewer", "--expires-in-days", "0"], "expires_in_days"),
    ],
)
def test_issue_token_refuses_bad_input_naming_it(world: Any, args: list[str], field: str) -> None:
    count = ApiToken.objects.count()
    with pytest.raises(CommandError, match=field):
        run("issue_token", *args)
    assert ApiToken.objects.count() == count


def test_verify_audit_checks_every_tenant_by_default(world: Any) -> None:
    output = run("verify_audit")
    assert "acme: ok" in output and "globex: ok" in output
    with pytest.raises(CommandError, match="tenant"):
        run("verify_audit", "--tenant", "nope")
