"""The portal shell: signing in (password or token), tenant scoping (404 outside, 403 below the role),
members, tokens, the audit log and the tenant home, through Django's test Client."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from experiments.models import Event, Experiment, Schedule
from tenants import audit, services
from tenants.actors import Actor
from tenants.forms import SIGN_IN_FAILED
from tenants.middleware import TOKEN_ENDED_MESSAGE
from tenants.models import ApiToken, AuditEntry, Membership, Tenant
from tenants.roles import Role
from tests.conftest import make_user

SYSTEM = Actor.system_actor("system:test")
SECRET = re.compile(r"cpt_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def signed_in(member: Any) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


def token_session(raw_token: str) -> Client:
    client = Client()
    response = client.post("/login/", {"token": raw_token})
    assert response.status_code == 302, response.content[:300]
    return client


def text(response: Any) -> str:
    return response.content.decode()


def main(response: Any) -> str:
    """The page's own content, without the shared header and tabs (sign-out and halt forms)."""
    page = text(response)
    return page[page.index("<main>"):page.index("</main>")]


def audit_count(tenant: Tenant) -> int:
    return AuditEntry.objects.filter(tenant=tenant).count()


# Signing in --------------------------------------------------------------------------------------


def test_login_with_password_lands_on_the_first_tenant_home(world: Any) -> None:
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"}, follow=True)
    assert response.redirect_chain[-1][0] == "/t/acme/"
    assert response.status_code == 200
    assert "Signed in as <strong>alice</strong>" in text(response)


def test_login_with_a_token_opens_a_session_bound_to_the_token(world: Any) -> None:
    client = token_session(world.operator.token)
    response = client.get("/t/acme/")
    assert response.status_code == 200
    assert response.wsgi_request.session_token.user == world.operator.user
    assert "token " + ApiToken.objects.get(user=world.operator.user).prefix in text(response)


def test_a_token_session_has_the_tokens_role_not_the_users(world: Any) -> None:
    # alice owns acme, but her viewer token opens a viewer session.
    raw = services.issue_token(SYSTEM, world.acme, "read-only", Role.VIEWER, user=world.owner.user).secret
    client = token_session(raw)
    assert client.get("/t/acme/members/").context["role"] == Role.VIEWER
    response = client.post("/t/acme/members/", {"username": "mallory", "role": "viewer"})
    assert response.status_code == 403


def test_a_token_session_sees_only_the_tokens_tenant(world: Any) -> None:
    Membership.objects.create(tenant=world.acme, user=world.outsider.user, role=Role.OWNER)
    client = token_session(world.outsider.token)  # issued in globex
    assert client.get("/t/globex/").status_code == 200
    assert client.get("/t/acme/").status_code == 404
    assert [t["slug"] for t in client.get("/t/globex/").context["portal_tenants"]] == ["globex"]


@pytest.mark.parametrize(
    "data",
    [
        {"username": "alice", "password": "wrong-password"},
        {"username": "nobody", "password": "alice-password-1"},
        {"token": "cpt_00000000_not-a-real-secret"},
        {"token": "garbage"},
    ],
    ids=["wrong-password", "unknown-user", "unknown-token", "malformed-token"],
)
def test_a_failed_login_gives_one_message_that_names_no_part(world: Any, data: dict[str, str]) -> None:
    client = Client()
    response = client.post("/login/", data)
    assert response.status_code == 200
    assert SIGN_IN_FAILED in text(response)
    assert "_auth_user_id" not in client.session


def test_a_revoked_tokens_session_is_signed_out(world: Any) -> None:
    client = token_session(world.viewer.token)
    assert client.get("/t/acme/").status_code == 200
    services.revoke_token(SYSTEM, ApiToken.objects.get(user=world.viewer.user))

    response = client.get("/t/acme/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    assert TOKEN_ENDED_MESSAGE in text(client.get(response["Location"]))


def test_a_token_session_ends_when_its_holder_leaves_the_tenant(world: Any) -> None:
    client = token_session(world.viewer.token)
    Membership.objects.filter(user=world.viewer.user).delete()
    assert client.get("/t/acme/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_token_session_never_opens_the_admin(world: Any) -> None:
    world.owner.user.is_staff = world.owner.user.is_superuser = True
    world.owner.user.save()
    assert signed_in(world.owner).get("/admin/").status_code == 200
    assert token_session(world.owner.token).get("/admin/").status_code == 403


def test_login_ignores_a_next_url_on_another_site(world: Any) -> None:
    response = Client().post("/login/?next=https://evil.example/", {"username": "bob", "password": "bob-password-1"})
    assert response["Location"] == "/"


def test_logout_needs_a_post(world: Any) -> None:
    client = signed_in(world.owner)
    assert client.get("/logout/").status_code == 405
    client.post("/logout/")
    assert "_auth_user_id" not in client.session


def test_posts_need_the_csrf_token(world: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner.user)
    response = client.post("/t/acme/members/", {"username": "mallory", "role": "viewer"})
    assert response.status_code == 403
    assert not Membership.objects.filter(tenant=world.acme, user=world.outsider.user).exists()


# Scoping ------------------------------------------------------------------------------------------

PAGES = ["/t/acme/", "/t/acme/members/", "/t/acme/tokens/", "/t/acme/audit/"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_sent_to_the_login_page(world: Any, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_an_outsider_gets_404_for_another_tenants_pages(world: Any, path: str) -> None:
    assert signed_in(world.outsider).get(path).status_code == 404


def test_an_outsider_gets_404_for_another_tenants_actions(world: Any) -> None:
    client = signed_in(world.outsider)
    assert client.post("/t/acme/members/", {"username": "mallory", "role": "owner"}).status_code == 404
    assert client.post("/t/acme/members/alice/remove/").status_code == 404
    assert Membership.objects.filter(tenant=world.acme).count() == 3


@pytest.mark.parametrize("role", ["owner", "operator", "viewer"])
@pytest.mark.parametrize("path", PAGES)
def test_every_member_sees_every_page(world: Any, role: str, path: str) -> None:
    response = signed_in(world.member(role)).get(path)
    assert response.status_code == 200
    assert "<title>" in text(response) and 'class="intro"' in text(response)


@pytest.mark.parametrize(
    "path,data",
    [
        ("/t/acme/members/", {"username": "mallory", "role": "viewer"}),
        ("/t/acme/members/bob/role/", {"bob-role": "owner"}),
        ("/t/acme/members/bob/remove/", {}),
    ],
    ids=["add", "change", "remove"],
)
@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_non_owners_get_403_changing_members(world: Any, role: str, path: str, data: dict[str, str]) -> None:
    before = audit_count(world.acme)
    response = signed_in(world.member(role)).post(path, data)
    assert response.status_code == 403
    assert Membership.objects.get(tenant=world.acme, user=world.operator.user).role == Role.OPERATOR
    assert audit_count(world.acme) == before


# Members ------------------------------------------------------------------------------------------


def test_only_owners_see_the_member_forms(world: Any) -> None:
    assert "Add a member" in text(signed_in(world.owner).get("/t/acme/members/"))
    page = text(signed_in(world.viewer).get("/t/acme/members/"))
    assert "Add a member" not in page and "Only owners can add" in page
    assert all(name in page for name in ("alice", "bob", "carol"))


def test_an_owner_adds_a_member_and_one_audit_entry_is_written(world: Any) -> None:
    make_user("dave")
    before = audit_count(world.acme)

    response = signed_in(world.owner).post("/t/acme/members/", {"username": "dave", "role": "operator"}, follow=True)

    assert "Added dave as operator." in text(response)
    assert Membership.objects.get(tenant=world.acme, user__username="dave").role == Role.OPERATOR
    assert audit_count(world.acme) == before + 1
    entry = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()
    assert (entry.action, entry.actor_label, entry.after["username"]) == ("member.add", "alice", "dave")


def test_adding_an_unknown_user_shows_the_message_by_the_field(world: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/members/", {"username": "nobody", "role": "viewer"})
    assert response.status_code == 400
    assert response.context["add_form"].errors["username"] == ["no user named 'nobody'"]
    assert "no user named" in text(response)


def test_an_owner_changes_a_role_and_removes_a_member(world: Any) -> None:
    client = signed_in(world.owner)
    client.post("/t/acme/members/carol/role/", {"carol-role": "operator"})
    assert Membership.objects.get(tenant=world.acme, user=world.viewer.user).role == Role.OPERATOR
    client.post("/t/acme/members/carol/remove/")
    assert not Membership.objects.filter(tenant=world.acme, user=world.viewer.user).exists()
    assert ApiToken.objects.get(user=world.viewer.user).state == "revoked"


def test_the_last_owner_cannot_be_demoted_or_removed(world: Any) -> None:
    client = signed_in(world.owner)
    response = client.post("/t/acme/members/alice/role/", {"alice-role": "viewer"})
    assert response.status_code == 400
    assert "last owner of a tenant cannot be demoted" in text(response)
    response = client.post("/t/acme/members/alice/remove/")
    assert "last owner of a tenant cannot be removed" in text(response)
    assert Membership.objects.get(tenant=world.acme, user=world.owner.user).role == Role.OWNER


# Tokens -------------------------------------------------------------------------------------------


def every_row_as_text() -> str:
    """Every row of every table, as PostgreSQL prints it: where a stored secret would show."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 (names from introspection)
            rows.extend(r[0] for r in cursor.fetchall())
    return "\n".join(rows)


def test_a_new_tokens_secret_is_shown_once_and_never_stored(world: Any) -> None:
    client = signed_in(world.operator)

    response = client.post("/t/acme/tokens/", {"name": "ci", "role": "operator", "expires_in_days": "30"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secrets_shown = SECRET.findall(text(response))
    assert len(set(secrets_shown)) == 1
    secret = secrets_shown[0]
    assert "Copy it now" in text(response)
    assert services.authenticate_token(secret).name == "ci"
    assert secret not in text(client.get("/t/acme/tokens/"))
    assert not SECRET.findall(text(client.get("/t/acme/tokens/")))
    stored = every_row_as_text()
    assert secret not in stored and secret.rsplit("_", 1)[1] not in stored


def test_a_token_role_is_capped_at_the_creators_role(world: Any) -> None:
    client = signed_in(world.viewer)
    form = client.get("/t/acme/tokens/").context["form"]
    assert [value for value, _ in form.fields["role"].choices] == ["viewer"]
    response = client.post("/t/acme/tokens/", {"name": "sneaky", "role": "owner"})
    assert response.status_code == 400
    assert "role" in response.context["form"].errors
    assert not ApiToken.objects.filter(name="sneaky").exists()


def test_a_duplicate_token_name_is_shown_by_the_name_field(world: Any) -> None:
    response = signed_in(world.operator).post("/t/acme/tokens/", {"name": "bob-operator", "role": "viewer"})
    assert response.status_code == 400
    assert "already exists" in response.context["form"].errors["name"][0]


def test_members_revoke_their_own_tokens_and_owners_any(world: Any) -> None:
    bobs, alices = (ApiToken.objects.get(user=m.user) for m in (world.operator, world.owner))
    client = signed_in(world.operator)
    page = text(client.get("/t/acme/tokens/"))
    assert f"/t/acme/tokens/{bobs.prefix}/revoke/" in page and f"/t/acme/tokens/{alices.prefix}/revoke/" not in page
    assert client.post(f"/t/acme/tokens/{alices.prefix}/revoke/").status_code == 403
    assert client.post(f"/t/acme/tokens/{bobs.prefix}/revoke/").status_code == 302
    assert ApiToken.objects.get(pk=bobs.pk).state == "revoked"

    carols = ApiToken.objects.get(user=world.viewer.user)
    assert signed_in(world.owner).post(f"/t/acme/tokens/{carols.prefix}/revoke/").status_code == 302
    assert ApiToken.objects.get(pk=carols.pk).state == "revoked"


def test_another_tenants_token_cannot_be_revoked(world: Any) -> None:
    globex_token = ApiToken.objects.get(user=world.outsider.user)
    assert signed_in(world.owner).post(f"/t/acme/tokens/{globex_token.prefix}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=globex_token.pk).state == "active"


# Audit log ----------------------------------------------------------------------------------------


def test_the_audit_log_filters_by_action_actor_and_time(world: Any) -> None:
    make_user("dave")
    client = signed_in(world.owner)
    client.post("/t/acme/members/", {"username": "dave", "role": "viewer"})

    entries = client.get("/t/acme/audit/?action=member.add").context["page"].object_list
    assert [e.action for e in entries] == ["member.add"]
    by_alice = client.get("/t/acme/audit/?actor=alice").context["page"].object_list
    assert [e.action for e in by_alice] == ["member.add"]
    by_system = client.get("/t/acme/audit/?actor=system").context["page"].object_list
    assert {e.action for e in by_system} == {"tenant.create", "token.create"}
    assert "No entries match these filters." in text(client.get("/t/acme/audit/?since=2999-01-01T00:00"))
    assert len(client.get("/t/acme/audit/?until=2999-01-01T00:00").context["page"].object_list) == audit_count(
        world.acme
    )


def test_an_invalid_audit_filter_says_so(world: Any) -> None:
    response = signed_in(world.owner).get("/t/acme/audit/?since=yesterday")
    assert "since" in response.context["filters"].errors
    assert "Fix the filters above" in text(response)


def test_the_csv_link_carries_the_filters_and_downloads(world: Any) -> None:
    client = signed_in(world.viewer)
    response = client.get("/t/acme/audit/?action=token.create&actor=system")
    csv_url = response.context["csv_url"]
    assert csv_url.startswith("/api/v1/tenants/acme/audit/?")
    assert "action=token.create" in csv_url and "actor=system" in csv_url and "format=csv" in csv_url
    download = client.get(csv_url)
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert "token.create" in download.content.decode() and "tenant.create" not in download.content.decode()


def test_the_audit_log_is_newest_first_in_pages_of_50(world: Any) -> None:
    for i in range(60):
        audit.record(SYSTEM, world.acme, "test.tick", object_type="tick", object_id=i)
    client = signed_in(world.viewer)
    first = client.get("/t/acme/audit/").context["page"]
    assert len(first.object_list) == 50
    assert [e.seq for e in first.object_list] == sorted((e.seq for e in first.object_list), reverse=True)
    second = client.get("/t/acme/audit/?action=test.tick&page=2")
    assert len(second.context["page"].object_list) == 10
    assert "action=test.tick&amp;page=1" in text(second)


# Home and tenant switch ---------------------------------------------------------------------------


def test_home_shows_counts_and_empty_states(world: Any) -> None:
    client = signed_in(world.viewer)
    response = client.get("/t/acme/")
    def counts(response: Any) -> list[tuple[str, int]]:
        return [(label, count) for label, count, _ in response.context["counts"]]

    assert counts(response) == [("Experiments", 0), ("Schedules", 0), ("Workflows", 0), ("Active runs", 0),
                                ("Agents connected", 0)]
    assert "No events yet" in text(response) and "Nothing is running" in text(response)
    assert "Yes, halt everything" not in text(response)  # a viewer has no halt button

    Experiment.objects.create(tenant=world.acme, name="kill-a-pod")
    Experiment.objects.create(tenant=world.acme, name="slow-network")
    Experiment.objects.create(tenant=world.globex, name="not-ours")
    Schedule.objects.create(tenant=world.acme, name="nightly")
    Event.objects.create(tenant=world.acme, reason="Injected", message="pod web-1 killed")
    Event.objects.create(tenant=world.globex, reason="Secret", message="globex only")

    response = client.get("/t/acme/")
    assert counts(response)[:3] == [("Experiments", 2), ("Schedules", 1), ("Workflows", 0)]
    assert "pod web-1 killed" in text(response) and "globex only" not in text(response)
    assert "No events yet" not in text(response)
    assert "tenant.create" in text(response)


def test_home_of_a_tenant_without_history_says_so(world: Any) -> None:
    quiet = Tenant.objects.create(slug="quiet", name="Quiet")
    Membership.objects.create(tenant=quiet, user=world.viewer.user, role=Role.VIEWER)
    page = text(signed_in(world.viewer).get("/t/quiet/"))
    assert "No events yet" in page and "No audit entries yet" in page


def test_the_tenant_switcher_lists_only_my_tenants(world: Any) -> None:
    response = signed_in(world.owner).get("/t/acme/")
    assert [t["slug"] for t in response.context["portal_tenants"]] == ["acme"]
    assert "Globex" not in text(response)

    Membership.objects.create(tenant=world.globex, user=world.owner.user, role=Role.VIEWER)
    response = signed_in(world.owner).get("/t/globex/")
    assert [(t["slug"], t["role"]) for t in response.context["portal_tenants"]] == [
        ("acme", "owner"), ("globex", "viewer"),
    ]
    assert 'href="/t/acme/"' in text(response) and 'href="/t/globex/"' in text(response)


def test_root_redirects_to_the_first_tenant_or_explains_there_is_none(world: Any) -> None:
    assert signed_in(world.outsider).get("/")["Location"] == "/t/globex/"
    lonely = make_user("lonely")
    client = Client()
    client.force_login(lonely)
    response = client.get("/")
    assert response.status_code == 200 and "You belong to no tenant yet" in text(response)


# Query counts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/t/acme/members/", "/t/acme/tokens/", "/t/acme/audit/", "/t/acme/"])
def test_list_pages_make_a_constant_number_of_queries(world: Any, path: str) -> None:
    client = signed_in(world.owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    small = queries()
    for n in range(5):
        user = make_user(f"extra{n}")
        Membership.objects.create(tenant=world.acme, user=user, role=Role.VIEWER)
        audit.record(SYSTEM, world.acme, "test.tick")
        services.issue_token(SYSTEM, world.acme, f"extra{n}", Role.VIEWER, user=user)
        Event.objects.create(tenant=world.acme, reason="Tick")
    assert queries() == small


def test_the_environments_page_lists_them_and_gives_the_cluster_manifest(world: Any) -> None:
    from injector import services as injector_services

    injector_services.create_environment(
        SYSTEM, world.acme, "prod", "kubernetes",
        config={"api_url": "https://k8s.example:6443", "namespaces": ["shop"]}, secrets={"token": "sa-token-1"},
    )
    injector_services.create_environment(SYSTEM, world.acme, "lab", "hosts")
    page = signed_in(world.viewer).get("/t/acme/environments/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "prod" in text and "Kubernetes cluster" in text and "Hosts (node agent)" in text
    assert "sa-token-1" not in text and "Issue a new registration token" not in text  # viewers only download

    blank = signed_in(world.viewer).get("/t/acme/environments/prod/manifest/")
    assert blank.status_code == 200 and "kind: DaemonSet" in blank.content.decode()
    assert "cpr_" not in blank.content.decode()
    assert signed_in(world.viewer).post("/t/acme/environments/prod/manifest/").status_code == 403
    issued = signed_in(world.owner).post("/t/acme/environments/prod/manifest/")
    assert issued.status_code == 200 and "cpr_" in issued.content.decode()
    assert "Issue a new registration token" in signed_in(world.owner).get("/t/acme/environments/prod/").content.decode()
    assert signed_in(world.outsider).get("/t/acme/environments/").status_code == 404


# Halt ------------------------------------------------------------------------------------------------


def test_the_halt_button_stops_every_run_for_operators_only(world: Any, settings: Any) -> None:
    from experiments import runs
    from experiments.models import Run
    from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment

    settings.HALT_WAIT_SECONDS = 0.5  # the simulated agents are not running: recovery is left to a worker
    hosts_environment(world.acme, agents=1)
    run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab", publish=False)
    home = signed_in(world.operator).get("/t/acme/")
    assert "Yes, halt everything" in text(home) and "Running now" in text(home)

    assert signed_in(world.viewer).post("/t/acme/halt/").status_code == 403
    assert signed_in(world.outsider).post("/t/acme/halt/").status_code == 404
    assert Run.objects.get(pk=run.pk).phase == Run.Phase.PENDING

    response = signed_in(world.operator).post("/t/acme/halt/", {"next": "/t/acme/runs/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/t/acme/runs/"
    assert "Halted: 1 run stopped" in text(response)
    assert Run.objects.get(pk=run.pk).phase in (Run.Phase.RECOVERING, Run.Phase.FINISHED)
    elsewhere = signed_in(world.operator).post("/t/acme/halt/", {"next": "https://evil.example/"})
    assert elsewhere["Location"] == "/t/acme/"  # never sent off the site
