"""The OpenAPI schema and its docs page, and list endpoints whose query count does not grow with rows."""
from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants import services
from tenants.actors import Actor
from tenants.models import Membership

from ..conftest import make_user


def test_the_openapi_schema_describes_every_endpoint(world: Any, api: Any) -> None:
    response = api(world.viewer).get("/api/v1/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/tenants/",
        "/api/v1/tenants/{slug}/",
        "/api/v1/tenants/{tenant_slug}/members/",
        "/api/v1/tenants/{tenant_slug}/members/{username}/",
        "/api/v1/tenants/{tenant_slug}/tokens/",
        "/api/v1/tenants/{tenant_slug}/tokens/{id}/",
        "/api/v1/tenants/{tenant_slug}/policy/",
        "/api/v1/tenants/{tenant_slug}/audit/",
    ):
        assert path in schema["paths"], path
    created = schema["paths"]["/api/v1/tenants/{tenant_slug}/tokens/"]["post"]["responses"]["201"]
    assert "IssuedToken" in str(created)


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Any) -> None:
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_the_docs_page_is_served_from_here_not_a_cdn(world: Any, api: Any) -> None:
    response = api(world.viewer, "session").get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html and "unpkg" not in html


def queries_for(client: Any, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(path).status_code == 200
    return len(context.captured_queries)


def grow(world: Any, n: int) -> None:
    """n more members (each with a token) and n more audit entries in acme."""
    system = Actor.system_actor()
    for i in range(n):
        user = make_user(f"user{i}")
        Membership.objects.create(tenant=world.acme, user=user, role="viewer")
        services.issue_token(system, world.acme, f"t{i}", "viewer", user=user)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tenants/",
        "/api/v1/tenants/acme/members/",
        "/api/v1/tenants/acme/tokens/",
        "/api/v1/tenants/acme/audit/",
        "/api/v1/tenants/acme/audit/?format=csv",
        "/api/v1/tenants/acme/policy/",
    ],
)
def test_list_endpoints_answer_in_a_constant_number_of_queries(world: Any, api: Any, path: str) -> None:
    client = api(world.owner, "session")
    client.get(path)  # warm the session and any first-use lookups
    few = queries_for(client, path)
    grow(world, 20)
    assert queries_for(client, path) == few
