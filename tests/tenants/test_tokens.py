"""API tokens: shown once, stored only as a hash, expire, revoke, never above their creator's role."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from tenants.models import ApiToken

T = "/api/v1/tenants/acme"


def all_rows_as_text() -> str:
    """Every row of every table of the database, as text: the haystack a leaked secret would be in."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        chunks = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" AS t')  # noqa: S608 (names from the catalogue)
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def test_the_secret_is_returned_once_and_the_database_holds_no_plaintext(world: Any, api: Any) -> None:
    response = api(world.operator).post(f"{T}/tokens/", {"name": "deploy", "role": "operator"}, format="json")
    assert response.status_code == 201
    secret = response.json()["token"]
    token_id = response.json()["id"]
    _, prefix, body = secret.split("_", 2)

    assert prefix == token_id
    haystack = all_rows_as_text()
    assert body not in haystack and secret not in haystack
    assert ApiToken.objects.get(prefix=prefix).secret_hash not in (body, secret)
    listed = api(world.operator).get(f"{T}/tokens/").content.decode()
    detail = api(world.operator).get(f"{T}/tokens/{token_id}/").content.decode()
    assert body not in listed and body not in detail and "token" not in api(world.owner).get(
        f"{T}/tokens/{token_id}/"
    ).json()


def test_a_new_token_works_and_records_its_last_use(world: Any, api: Any) -> None:
    secret = api(world.viewer).post(f"{T}/tokens/", {"name": "ro", "role": "viewer"}, format="json").json()["token"]
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(f"{T}/").status_code == 200
    assert ApiToken.objects.get(name="ro").last_used_at is not None


def test_an_expired_token_gets_401(world: Any, api: Any) -> None:
    ApiToken.objects.filter(user=world.viewer.user).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api(world.viewer).get(f"{T}/")
    assert response.status_code == 401


def test_a_token_that_expires_later_still_works(world: Any, api: Any) -> None:
    ApiToken.objects.filter(user=world.viewer.user).update(expires_at=timezone.now() + timedelta(days=1))
    assert api(world.viewer).get(f"{T}/").status_code == 200


def test_a_revoked_token_gets_401(world: Any, api: Any) -> None:
    token_id = ApiToken.objects.get(user=world.viewer.user).prefix
    assert api(world.owner).delete(f"{T}/tokens/{token_id}/").status_code == 204
    assert api(world.viewer).get(f"{T}/").status_code == 401


def test_a_wrong_secret_with_a_real_prefix_gets_401(world: Any, api: Any) -> None:
    mark, prefix, _ = world.viewer.token.split("_", 2)
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {mark}_{prefix}_{'x' * 43}")
    assert client.get(f"{T}/").status_code == 401


def test_a_removed_members_tokens_stop_working(world: Any, api: Any) -> None:
    assert api(world.owner).delete(f"{T}/members/carol/").status_code == 204
    assert api(world.viewer).get(f"{T}/").status_code == 401
    assert ApiToken.objects.get(user=world.viewer.user).revoked_at is not None


def test_a_token_cannot_be_issued_above_its_creators_role(world: Any, api: Any) -> None:
    for member, role in ((world.operator, "owner"), (world.viewer, "operator"), (world.viewer, "owner")):
        response = api(member, "session").post(f"{T}/tokens/", {"name": "up", "role": role}, format="json")
        assert response.status_code == 400, (member.user, role)
        assert "role" in response.json()
    assert not ApiToken.objects.filter(name="up").exists()


def test_a_viewer_token_cannot_mint_an_operator_token_even_for_an_owner(world: Any, api: Any) -> None:
    from tenants import services
    from tenants.actors import Actor

    secret = services.issue_token(Actor.system_actor(), world.acme, "owner-ro", "viewer", user=world.owner.user).secret
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.post(f"{T}/tokens/", {"name": "escalate", "role": "operator"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()


def test_a_token_cannot_create_tenants(world: Any, api: Any) -> None:
    response = api(world.owner).post("/api/v1/tenants/", {"slug": "newco"}, format="json")
    assert response.status_code == 403
