"""The environments pages of the portal: the list and the register form, an environment's page (its
settings without secrets, the cluster manifest or the agent install command, agents, grants), the
registration token shown once, and delete; as owner, operator, viewer and outsider."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from injector import services
from injector.models import Agent, Environment
from tenants.actors import Actor
from tenants.models import AuditEntry
from tests.portal.test_portal import main, signed_in, text

SYSTEM = Actor.system_actor("system:test")
REGISTRATION_TOKEN = re.compile(r"cpr_[0-9a-f]+_[A-Za-z0-9_-]+")
GATEWAY = "agents.chaosplane.example:7443"
SA_TOKEN = "sa-token-do-not-show-1"
AWS_SECRET = "aws-secret-do-not-show-1"
CA_PEM_MARK = "-----BEGIN CERTIFICATE-----"


def kinds(manifest: str) -> list[str]:
    """The kinds of the manifest's documents (not of the references inside them)."""
    return re.findall(r"^kind: (\w+)$", manifest, re.MULTILINE)


def tokens_in(response: Any) -> list[str]:
    return REGISTRATION_TOKEN.findall(text(response))


@pytest.fixture
def envs(world: Any) -> dict[str, Environment]:
    prod, _ = services.create_environment(
        SYSTEM, world.acme, "prod", "kubernetes",
        config={"api_url": "https://k8s.example:6443", "namespaces": ["shop", "web"]}, secrets={"token": SA_TOKEN},
    )
    lab, _ = services.create_environment(SYSTEM, world.acme, "lab", "hosts", requires_grant=True)
    cloud, _ = services.create_environment(
        SYSTEM, world.acme, "cloud", "aws", config={"region": "eu-west-1"},
        secrets={"access_key_id": "AKIAEXAMPLE", "secret_access_key": AWS_SECRET},
    )
    other, _ = services.create_environment(SYSTEM, world.globex, "secret-lab", "hosts")
    return {"prod": prod, "lab": lab, "cloud": cloud, "other": other}


def agent(env: Environment, name: str, **fields: Any) -> Agent:
    return Agent.objects.create(tenant=env.tenant, environment=env, name=name, **fields)


# The list --------------------------------------------------------------------------------------------


def test_every_member_sees_the_environments_with_their_kind_settings_agents_and_grant(world: Any, envs: Any) -> None:
    agent(envs["lab"], "web-1", connected=True)
    agent(envs["lab"], "web-2")

    page = signed_in(world.viewer).get("/t/acme/environments/")

    assert page.status_code == 200
    body = main(page)
    assert [row["env"].name for row in page.context["rows"]] == ["cloud", "lab", "prod"]
    assert "secret-lab" not in body  # globex's
    assert "Kubernetes cluster" in body and "Hosts (node agent)" in body and "AWS account" in body
    assert "https://k8s.example:6443 · namespaces shop, web" in body and "region eu-west-1" in body
    assert "1 of 2" in body and "0 of 0" in body  # lab's agents; prod has none yet
    assert 'href="/t/acme/environments/prod/"' in body
    assert SA_TOKEN not in text(page) and AWS_SECRET not in text(page)


def test_an_empty_list_says_what_to_do(world: Any) -> None:
    owner = main(signed_in(world.owner).get("/t/acme/environments/"))
    viewer = main(signed_in(world.viewer).get("/t/acme/environments/"))
    assert "No environments yet." in owner and "Register one below" in owner
    assert "No environments yet." in viewer and "Ask an owner of Acme Corp to register one." in viewer


@pytest.mark.parametrize("member", ["operator", "viewer"])
def test_only_owners_get_the_register_form(world: Any, member: str) -> None:
    client = signed_in(getattr(world, member))
    body = main(client.get("/t/acme/environments/?kind=aws"))
    assert "Register an environment" not in body and "<input" not in body and "<form" not in body
    response = client.post("/t/acme/environments/", {"kind": "hosts", "name": "sneaky"})
    assert response.status_code == 403
    assert not Environment.objects.filter(name="sneaky").exists()


def test_the_register_form_asks_for_the_kind_first_then_its_fields(world: Any) -> None:
    client = signed_in(world.owner)
    first = main(client.get("/t/acme/environments/"))
    assert "Choose a kind above" in first and 'href="?kind=kubernetes#register"' in first
    assert 'name="name"' not in first

    aws = main(client.get("/t/acme/environments/?kind=aws"))
    assert 'name="region"' in aws and 'name="secret_access_key"' in aws and 'type="password"' in aws
    assert 'name="api_url"' not in aws and 'value="aws"' in aws

    kube = main(client.get("/t/acme/environments/?kind=kubernetes"))
    assert 'name="api_url"' in kube and 'name="namespaces"' in kube and 'value="cluster"' in kube
    assert 'name="token"' in kube and "Optional now" in kube


def test_the_list_takes_a_fixed_number_of_queries(world: Any, envs: Any) -> None:
    client = signed_in(world.owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/t/acme/environments/").status_code == 200
        return len(captured)

    small = queries()
    for n in range(4):
        env, _ = services.create_environment(SYSTEM, world.acme, f"more-{n}", "hosts")
        agent(env, f"a-{n}", connected=True)
    assert queries() == small


# Registering -----------------------------------------------------------------------------------------


@override_settings(AGENT_GATEWAY_PUBLIC_ADDRESS=GATEWAY)
def test_registering_a_namespaced_cluster_shows_its_manifest_with_the_token_once(world: Any) -> None:
    client = signed_in(world.owner)

    response = client.post("/t/acme/environments/", {
        "kind": "kubernetes", "name": "shop", "api_url": "https://k8s.example:6443", "scope": "namespace",
        "namespaces": "shop, web", "verify": "on",
    })

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] and "no-store" in response["Cache-Control"]
    env = Environment.objects.get(tenant=world.acme, name="shop")
    assert env.kind == "kubernetes" and env.config["namespaces"] == ["shop", "web"] and not env.secrets_encrypted
    assert services.environment_for_registration(tokens_in(response)[0]) == env
    manifest = response.context["manifest"]
    assert tokens_in(response)[0] in manifest
    assert kinds(manifest).count("Role") == 2 and "ClusterRole" not in kinds(manifest)
    assert "namespace: shop" in manifest and "namespace: web" in manifest
    assert "kind: DaemonSet" in manifest and f"value: {GATEWAY}" in manifest
    body = main(response)
    assert '<pre id="manifest"' in body and 'data-copy="manifest"' in body
    assert 'download="chaosplane-shop.yaml"' in body and "will not be shown again" in body
    assert "Registered kubernetes cluster shop." in text(response)

    again = client.get("/t/acme/environments/shop/")
    assert tokens_in(again) == [] and "&lt;paste the registration token&gt;" in text(again)
    assert "kind: DaemonSet" in again.context["manifest"]


def test_registering_a_cluster_scoped_cluster_with_a_token_gives_a_cluster_role(world: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/", {
        "kind": "kubernetes", "name": "whole", "api_url": "https://k8s.example:6443", "scope": "cluster",
        "namespaces": "", "token": SA_TOKEN, "verify": "on",
    })

    assert response.status_code == 200
    manifest = response.context["manifest"]
    assert {"ClusterRole", "ClusterRoleBinding"} <= set(kinds(manifest)) and "Role" not in kinds(manifest)
    assert "- nodes" in manifest
    assert SA_TOKEN not in text(response)
    env = Environment.objects.get(name="whole")
    assert env.config["scope"] == "cluster" and env.secrets_encrypted
    page = main(signed_in(world.viewer).get("/t/acme/environments/whole/"))
    assert 'set <span class="muted">(never shown)</span>' in page


@override_settings(AGENT_GATEWAY_PUBLIC_ADDRESS=GATEWAY)
def test_registering_hosts_gives_the_install_command_with_the_token_only_in_that_response(world: Any) -> None:
    client = signed_in(world.owner)

    response = client.post("/t/acme/environments/", {"kind": "hosts", "name": "edge"})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = tokens_in(response)[0]
    command = response.context["install_command"]
    assert f"CHAOSPLANE_AGENT_TOKEN={token} /opt/chaosplane-agent/bin/python -m nodeagent" in command
    assert f"--gateway {GATEWAY} --ca-file" in command and "pip install -r requirements-agent.txt" in command
    body = main(response)
    assert '<pre id="install-command"' in body and "will not be shown again" in body
    assert services.environment_for_registration(token).name == "edge"

    later = client.get("/t/acme/environments/edge/")
    assert tokens_in(later) == [] and token not in text(later)
    assert "CHAOSPLANE_AGENT_TOKEN='<registration token>'" in later.context["install_command"]
    assert "CHAOSPLANE_AGENT_TOKEN=&#x27;&lt;registration token&gt;&#x27;" in main(later)
    assert "No agent has registered yet." in main(later)


def test_registering_a_cloud_account_keeps_its_secrets_out_of_every_page(world: Any) -> None:
    client = signed_in(world.owner)

    response = client.post("/t/acme/environments/", {
        "kind": "aws", "name": "billing", "region": "us-east-1", "access_key_id": "AKIAEXAMPLE2",
        "secret_access_key": AWS_SECRET, "requires_grant": "on",
    })

    assert response.status_code == 302 and response["Location"] == "/t/acme/environments/billing/"
    env = Environment.objects.get(name="billing")
    assert env.requires_grant and env.secrets_encrypted and env.registration_prefix is None
    for path in ("/t/acme/environments/", "/t/acme/environments/billing/"):
        page = text(client.get(path, follow=True))
        assert AWS_SECRET not in page and "AKIAEXAMPLE2" not in page
    detail = main(client.get("/t/acme/environments/billing/"))
    assert "Access key" in detail and "set" in detail and "us-east-1" in detail
    assert "Agents" not in detail and "install-command" not in detail  # a cloud account has no agents
    assert AuditEntry.objects.filter(tenant=world.acme, action="environment.create").exists()


def test_a_bad_value_is_shown_on_its_field_and_registers_nothing(world: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/", {
        "kind": "aws", "name": "billing", "region": "Mars", "access_key_id": "AKIAEXAMPLE2",
        "secret_access_key": AWS_SECRET,
    })

    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["region"] == ["must be an AWS region (like us-east-1)"]
    assert "must be an AWS region (like us-east-1)" in main(response)
    assert AWS_SECRET not in text(response)  # a secret is never rendered back, even on an error
    assert not Environment.objects.filter(name="billing").exists()


def test_a_kubernetes_cluster_needs_an_api_url_and_namespaces_when_namespaced(world: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/", {
        "kind": "kubernetes", "name": "shop", "api_url": "ftp://nope", "scope": "namespace", "namespaces": "",
        "kubeconfig": "", "token": SA_TOKEN,
    })

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["api_url"] == ["must be an https:// or http:// URL"]
    assert errors["namespaces"][0].startswith("required with scope namespace")
    assert SA_TOKEN not in text(response)
    assert not Environment.objects.filter(name="shop").exists()


def test_a_taken_name_is_refused_on_the_name_field(world: Any, envs: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/", {"kind": "hosts", "name": "lab"})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["an environment named 'lab' already exists in acme"]


def test_an_unknown_kind_registers_nothing(world: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/", {"kind": "mainframe", "name": "x"}, follow=True)
    assert "Choose what kind of environment to register." in text(response)
    assert not Environment.objects.filter(name="x").exists()


# An environment's page --------------------------------------------------------------------------------


def test_the_page_shows_settings_but_never_secrets(world: Any, envs: Any) -> None:
    for member in (world.owner, world.operator, world.viewer):
        response = signed_in(member).get("/t/acme/environments/prod/")
        assert response.status_code == 200
        body = main(response)
        assert "https://k8s.example:6443" in body and "<code>shop</code>, <code>web</code>" in body
        assert "Service-account token" in body and "set <span" in body
        assert SA_TOKEN not in text(response) and tokens_in(response) == []


def test_a_cluster_without_a_token_says_not_set(world: Any) -> None:
    services.create_environment(SYSTEM, world.acme, "new", "kubernetes",
                                config={"api_url": "https://k.example", "scope": "cluster"})
    body = main(signed_in(world.viewer).get("/t/acme/environments/new/"))
    assert "Service-account token</dt>" in body and "not set" in body and "chaosplane-controller-token" in body


def test_the_manifest_follows_the_chosen_scope(world: Any, envs: Any) -> None:
    client = signed_in(world.viewer)

    own = client.get("/t/acme/environments/prod/").context["manifest"]
    cluster = client.get("/t/acme/environments/prod/?scope=cluster").context["manifest"]
    other = client.get("/t/acme/environments/prod/?scope=namespace&namespaces=payments").context["manifest"]

    assert kinds(own).count("Role") == 2 and "ClusterRole" not in kinds(own)
    assert "ClusterRole" in kinds(cluster) and "- nodes" in cluster
    assert "namespace: payments" in other and "namespace: shop" not in other
    body = main(client.get("/t/acme/environments/prod/?scope=cluster"))
    assert "/t/acme/environments/prod/manifest/?scope=cluster&amp;namespaces=" in body


def test_a_bad_scope_choice_is_shown_on_its_field(world: Any, envs: Any) -> None:
    response = signed_in(world.viewer).get("/t/acme/environments/prod/?scope=namespace&namespaces=")
    assert response.status_code == 200 and response.context["manifest"] is None
    assert response.context["scope_form"].errors["namespaces"] == [
        "name at least one namespace, or choose the whole cluster"
    ]
    response = signed_in(world.viewer).get("/t/acme/environments/prod/?scope=namespace&namespaces=Bad_One")
    assert "not namespace names" in response.context["scope_form"].errors["namespaces"][0]


def test_the_agents_are_listed_with_what_they_report(world: Any, envs: Any) -> None:
    beat = timezone.now() - timedelta(seconds=5)
    agent(envs["lab"], "web-1", hostname="web-1.internal", labels={"zone": "a"}, version="0.1.0", connected=True,
          connected_at=beat, last_heartbeat=beat,
          capabilities={"network": {"available": True, "detail": ""},
                        "jvm": {"available": False, "detail": "no java on this host"}})
    agent(envs["lab"], "web-2")

    body = main(signed_in(world.viewer).get("/t/acme/environments/lab/"))

    assert "web-1.internal" in body and '<code class="label">zone=a</code>' in body and "0.1.0" in body
    assert f'<time datetime="{beat.isoformat(timespec="seconds")[:19]}' in body
    assert "1 of 2 available" in body and "no java on this host" in body
    assert "never" in body  # web-2 never sent a heartbeat


def test_a_cluster_without_agents_says_to_apply_the_manifest(world: Any, envs: Any) -> None:
    body = main(signed_in(world.viewer).get("/t/acme/environments/prod/"))
    assert "No agent has registered yet." in body and "Apply the cluster manifest above" in body


def test_a_viewer_or_operator_sees_no_buttons(world: Any, envs: Any) -> None:
    for member in (world.operator, world.viewer):
        for name in ("prod", "lab", "cloud"):
            body = main(signed_in(member).get(f"/t/acme/environments/{name}/"))
            assert 'method="post"' not in body
            assert "Issue a new registration token" not in body and "Grant run" not in body
            assert "Delete " not in body and "Revoke" not in body


# Another tenant's environment -------------------------------------------------------------------------


@pytest.mark.parametrize("method, suffix", [
    ("get", ""), ("post", "token/"), ("post", "grants/"), ("post", "grants/bob/revoke/"), ("post", "delete/"),
    ("get", "manifest/"), ("post", "manifest/"),
])
def test_another_tenants_environment_is_a_404(world: Any, envs: Any, method: str, suffix: str) -> None:
    alice = signed_in(world.owner)
    # globex's environment, through acme's URL (alice owns acme) and through globex's (she is not in it)
    assert getattr(alice, method)(f"/t/acme/environments/secret-lab/{suffix}").status_code == 404
    assert getattr(alice, method)(f"/t/globex/environments/secret-lab/{suffix}").status_code == 404
    # and acme's environment for mallory
    assert getattr(signed_in(world.outsider), method)(f"/t/acme/environments/prod/{suffix}").status_code == 404
    assert Environment.objects.filter(name="secret-lab").exists()


def test_an_outsider_gets_404_for_the_list(world: Any, envs: Any) -> None:
    assert signed_in(world.outsider).get("/t/acme/environments/").status_code == 404
    assert signed_in(world.outsider).post("/t/acme/environments/", {"kind": "hosts", "name": "x"}).status_code == 404


# The registration token -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lab", "prod"])
def test_an_owner_rotates_the_token_and_sees_it_once(world: Any, envs: Any, name: str) -> None:
    client = signed_in(world.owner)
    assert "Issue a new registration token" in main(client.get(f"/t/acme/environments/{name}/"))
    assert client.get(f"/t/acme/environments/{name}/token/").status_code == 405  # POST only

    response = client.post(f"/t/acme/environments/{name}/token/")

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = tokens_in(response)[0]
    assert services.environment_for_registration(token) == envs[name]
    assert "will not be shown again" in main(response)
    shown = response.context["manifest"] if name == "prod" else response.context["install_command"]
    assert token in shown
    assert token not in text(client.get(f"/t/acme/environments/{name}/"))

    second = tokens_in(client.post(f"/t/acme/environments/{name}/token/"))[0]
    assert services.environment_for_registration(token) is None  # the first stopped working
    assert services.environment_for_registration(second) == envs[name]


def test_rotating_keeps_the_chosen_scope_in_the_manifest(world: Any, envs: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/prod/token/", {"scope": "cluster", "namespaces": ""})
    manifest = response.context["manifest"]
    assert "ClusterRole" in kinds(manifest) and tokens_in(response)[0] in manifest
    assert response.context["manifest_download"].startswith("data:application/yaml;charset=utf-8,")


def test_a_cloud_account_has_no_token_to_rotate(world: Any, envs: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/cloud/token/", follow=True)
    assert "only hosts and kubernetes environments have a registration token" in text(response)
    assert tokens_in(response) == []


@pytest.mark.parametrize("member", ["operator", "viewer"])
def test_only_owners_rotate_the_token(world: Any, envs: Any, member: str) -> None:
    prefix = envs["lab"].registration_prefix
    assert signed_in(getattr(world, member)).post("/t/acme/environments/lab/token/").status_code == 403
    envs["lab"].refresh_from_db()
    assert envs["lab"].registration_prefix == prefix


# The cluster manifest download (the URL of issue 5) ----------------------------------------------------


def test_the_manifest_download_keeps_working_and_takes_the_scope(world: Any, envs: Any) -> None:
    viewer = signed_in(world.viewer)
    blank = viewer.get("/t/acme/environments/prod/manifest/")
    assert blank.status_code == 200 and "kind: DaemonSet" in text(blank) and tokens_in(blank) == []
    assert blank["Content-Disposition"] == 'attachment; filename="chaosplane-prod.yaml"'
    cluster = viewer.get("/t/acme/environments/prod/manifest/?scope=cluster&namespaces=")
    assert "ClusterRole" in kinds(text(cluster))
    assert viewer.get("/t/acme/environments/prod/manifest/?scope=galaxy").status_code == 400
    assert viewer.get("/t/acme/environments/lab/manifest/").status_code == 404  # hosts have none
    assert viewer.post("/t/acme/environments/prod/manifest/").status_code == 403

    owner = signed_in(world.owner)
    prefix = envs["prod"].registration_prefix
    refused = owner.post("/t/acme/environments/prod/manifest/", {"scope": "namespace", "namespaces": ""})
    assert refused.status_code == 400
    envs["prod"].refresh_from_db()
    assert envs["prod"].registration_prefix == prefix  # a refused choice rotates nothing
    issued = owner.post("/t/acme/environments/prod/manifest/")
    assert issued.status_code == 200 and len(tokens_in(issued)) == 1


# Grants -----------------------------------------------------------------------------------------------


def test_an_owner_grants_and_revokes_run(world: Any, envs: Any) -> None:
    owner, bob = signed_in(world.owner), signed_in(world.operator)
    assert "no" in main(bob.get("/t/acme/environments/lab/")).split("You may run experiments here</dt>")[1][:20]
    page = main(owner.get("/t/acme/environments/lab/"))
    assert "No grants." in page and '<option value="bob">bob (operator)</option>' in page
    assert 'value="alice"' not in page  # owners need no grant

    response = owner.post("/t/acme/environments/lab/grants/", {"username": "bob"})

    assert response.status_code == 302
    assert world.operator.user.has_perm("injector.run_environment", envs["lab"])
    page = main(owner.get("/t/acme/environments/lab/"))
    assert "<strong>bob</strong> may run here" in page and 'value="bob"' not in page
    assert "yes" in main(bob.get("/t/acme/environments/lab/")).split("You may run experiments here</dt>")[1][:20]
    assert "<strong>bob</strong> may run here" in main(signed_in(world.viewer).get("/t/acme/environments/lab/"))

    response = owner.post("/t/acme/environments/lab/grants/bob/revoke/", follow=True)

    assert "bob may no longer run against lab." in text(response)
    assert not world.operator.user.has_perm("injector.run_environment", envs["lab"])
    assert AuditEntry.objects.filter(action__in=["environment.grant", "environment.revoke"]).count() == 2


def test_a_grant_to_someone_outside_the_tenant_is_refused_on_the_field(world: Any, envs: Any) -> None:
    response = signed_in(world.owner).post("/t/acme/environments/lab/grants/", {"username": "mallory"})
    assert response.status_code == 400
    assert "mallory is not one of the available choices" in response.context["grant_form"].errors["username"][0]
    assert not world.outsider.user.has_perm("injector.run_environment", envs["lab"])


@pytest.mark.parametrize("member", ["operator", "viewer"])
def test_only_owners_grant_and_revoke(world: Any, envs: Any, member: str) -> None:
    client = signed_in(getattr(world, member))
    assert client.post("/t/acme/environments/lab/grants/", {"username": "carol"}).status_code == 403
    assert client.post("/t/acme/environments/lab/grants/bob/revoke/").status_code == 403
    assert not world.viewer.user.has_perm("injector.run_environment", envs["lab"])


# Delete -----------------------------------------------------------------------------------------------


def test_an_owner_deletes_an_environment_after_typing_its_name(world: Any, envs: Any) -> None:
    client = signed_in(world.owner)

    wrong = client.post("/t/acme/environments/lab/delete/", {"confirm": "prod"})

    assert wrong.status_code == 400
    assert wrong.context["delete_form"].errors["confirm"] == ["Type lab exactly to delete it."]
    assert Environment.objects.filter(name="lab").exists()

    response = client.post("/t/acme/environments/lab/delete/", {"confirm": "lab"}, follow=True)

    assert response.redirect_chain[-1][0] == "/t/acme/environments/"
    assert "Deleted environment lab" in text(response)
    assert not Environment.objects.filter(tenant=world.acme, name="lab").exists()
    assert client.get("/t/acme/environments/lab/").status_code == 404


def test_an_environment_with_an_active_run_is_not_deleted(world: Any, envs: Any) -> None:
    from experiments.models import Run

    Run.objects.create(
        tenant=world.acme, experiment_name="x", environment=envs["lab"], environment_name="lab", kind="NetworkChaos",
        seed=1, deadline=timezone.now() + timedelta(minutes=5), phase=Run.Phase.RUNNING,
    )
    response = signed_in(world.owner).post("/t/acme/environments/lab/delete/", {"confirm": "lab"})
    assert response.status_code == 400
    assert "1 runs are active in lab" in response.context["delete_form"].errors["confirm"][0]
    assert Environment.objects.filter(name="lab").exists()


@pytest.mark.parametrize("member", ["operator", "viewer"])
def test_only_owners_delete(world: Any, envs: Any, member: str) -> None:
    response = signed_in(getattr(world, member)).post("/t/acme/environments/lab/delete/", {"confirm": "lab"})
    assert response.status_code == 403
    assert Environment.objects.filter(name="lab").exists()


def test_a_pasted_key_or_kubeconfig_is_not_rendered_back_on_an_error(world: Any) -> None:
    key = '{"type": "service_account", "client_email": "x@y", "private_key": "PRIVATE-KEY-DO-NOT-SHOW"}'
    response = signed_in(world.owner).post("/t/acme/environments/", {
        "kind": "gcp", "name": "gcp", "project": "Not A Project", "zone": "us-central1-a", "service_account_key": key,
    })
    assert response.status_code == 400 and "project" in response.context["form"].errors
    assert "PRIVATE-KEY-DO-NOT-SHOW" not in text(response)

    kubeconfig = "apiVersion: v1\nusers: [{name: u, user: {token: KUBE-TOKEN-DO-NOT-SHOW}}]\n"
    response = signed_in(world.owner).post("/t/acme/environments/", {
        "kind": "kubernetes", "name": "k", "scope": "cluster", "kubeconfig": kubeconfig,
    })
    assert response.status_code == 400 and "kubeconfig" in response.context["form"].errors
    assert "KUBE-TOKEN-DO-NOT-SHOW" not in text(response)
