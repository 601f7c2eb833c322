"""Every endpoint of the tenants API, every method, as owner, operator, viewer, an outsider (owner of
another tenant) and nobody, by bearer token and by session: 2xx, 401, 403 or 404 as the design says.

Another tenant's objects answer 404 (never 403: that would tell an outsider they exist); inside the
tenant too low a role answers 403; no credentials answer 401."""
from __future__ import annotations

from typing import Any

import pytest

from tenants.models import ApiToken, Tenant

ACTORS = ["owner", "operator", "viewer", "outsider", "anonymous"]
T = "/api/v1/tenants/acme"


def owner_token_id(world: Any) -> str:
    return ApiToken.objects.get(user=world.owner.user, tenant=world.acme).prefix


def first_seq(world: Any) -> int:
    return world.acme.audit_entries.order_by("seq").values_list("seq", flat=True).first()


# (method, path, body, {actor: expected status}); paths may use {token} and {seq}.
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    ("get", "/api/v1/tenants/", None, dict(owner=200, operator=200, viewer=200, outsider=200, anonymous=401)),
    ("get", f"{T}/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    ("patch", f"{T}/", {"name": "Acme 2"}, dict(owner=200, operator=403, viewer=403, outsider=404, anonymous=401)),
    ("get", f"{T}/members/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    (
        "post",
        f"{T}/members/",
        {"username": "dave", "role": "viewer"},
        dict(owner=201, operator=403, viewer=403, outsider=404, anonymous=401),
    ),
    ("get", f"{T}/members/carol/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    (
        "patch",
        f"{T}/members/carol/",
        {"role": "operator"},
        dict(owner=200, operator=403, viewer=403, outsider=404, anonymous=401),
    ),
    (
        "put",
        f"{T}/members/carol/",
        {"role": "operator"},
        dict(owner=200, operator=403, viewer=403, outsider=404, anonymous=401),
    ),
    ("delete", f"{T}/members/carol/", None, dict(owner=204, operator=403, viewer=403, outsider=404, anonymous=401)),
    ("get", f"{T}/tokens/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    (
        "post",
        f"{T}/tokens/",
        {"name": "ci", "role": "viewer", "expires_in_days": 30},
        dict(owner=201, operator=201, viewer=201, outsider=404, anonymous=401),
    ),
    ("get", f"{T}/tokens/{{token}}/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    (
        "delete",
        f"{T}/tokens/{{token}}/",
        None,
        dict(owner=204, operator=403, viewer=403, outsider=404, anonymous=401),
    ),
    ("get", f"{T}/policy/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    (
        "patch",
        f"{T}/policy/",
        {"max_targets": 5},
        dict(owner=200, operator=403, viewer=403, outsider=404, anonymous=401),
    ),
    (
        "put",
        f"{T}/policy/",
        {"protected_namespaces": ["kube-system", "prod"], "max_duration_seconds": 600},
        dict(owner=200, operator=403, viewer=403, outsider=404, anonymous=401),
    ),
    ("get", f"{T}/audit/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    ("get", f"{T}/audit/?format=csv", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
    ("get", f"{T}/audit/{{seq}}/", None, dict(owner=200, operator=200, viewer=200, outsider=404, anonymous=401)),
]

CASES = [
    pytest.param(method, path, body, actor, expected[actor], auth, id=f"{auth}-{method}-{path}-{actor}")
    for method, path, body, expected in MATRIX
    for actor in ACTORS
    for auth in ("token", "session")
    if not (auth == "session" and actor == "anonymous")
]


@pytest.mark.parametrize("method,path,body,actor,expected,auth", CASES)
def test_permission_matrix(world: Any, api: Any, method, path, body, actor, expected, auth) -> None:
    from tests.conftest import make_user

    make_user("dave")
    path = path.format(token=owner_token_id(world), seq=first_seq(world))
    client = api(None if actor == "anonymous" else world.member(actor), auth)

    response = getattr(client, method)(path, body, format="json")

    assert response.status_code == expected, response.content[:500]


def test_anonymous_gets_a_bearer_challenge(world: Any, api: Any) -> None:
    response = api(None).get("/api/v1/tenants/acme/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_tenant_list_shows_only_my_tenants(world: Any, api: Any) -> None:
    response = api(world.outsider).get("/api/v1/tenants/")
    assert [t["slug"] for t in response.json()["results"]] == ["globex"]
    response = api(world.operator, "session").get("/api/v1/tenants/")
    assert [(t["slug"], t["role"]) for t in response.json()["results"]] == [("acme", "operator")]


def test_a_token_reaches_only_its_own_tenant(world: Any, api: Any) -> None:
    # mallory joins acme as owner, but her token was issued in globex: it must not open acme.
    from tenants.models import Membership

    Membership.objects.create(tenant=world.acme, user=world.outsider.user, role="owner")
    assert api(world.outsider, "session").get("/api/v1/tenants/acme/").status_code == 200
    assert api(world.outsider, "token").get("/api/v1/tenants/acme/").status_code == 404


def test_a_token_never_exceeds_its_holders_current_role(world: Any, api: Any) -> None:
    # bob's operator token stops giving operator rights once bob is demoted to viewer.
    from tenants.models import Membership

    Membership.objects.filter(tenant=world.acme, user=world.operator.user).update(role="viewer")
    response = api(world.operator).post(f"{T}/tokens/", {"name": "x", "role": "operator"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()


def test_members_revoke_only_their_own_tokens(world: Any, api: Any) -> None:
    mine = ApiToken.objects.get(user=world.viewer.user).prefix
    assert api(world.viewer).delete(f"{T}/tokens/{mine}/").status_code == 204
    assert ApiToken.objects.get(prefix=mine).revoked_at is not None


def test_the_tenant_is_named_in_the_url_not_taken_from_the_body(world: Any, api: Any) -> None:
    response = api(world.owner).patch(f"{T}/", {"name": "Renamed", "slug": "globex"}, format="json")
    assert response.status_code == 200
    assert Tenant.objects.get(slug="acme").name == "Renamed"
    assert Tenant.objects.get(slug="globex").name == "Globex"
