"""Portal pages of the injector app: a tenant's environments (where faults land), registering one, its
agents and grants, its registration token (shown once), and the cluster manifest of a kubernetes
environment (the same YAML as the API's). Thin: scoping and roles come from TenantPortalMixin, every
change from injector.services, the rules of each kind's settings and secrets from injector.credentials.
"""
from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import TemplateView
from guardian.shortcuts import get_users_with_perms

from tenants.forms import add_service_error
from tenants.models import Membership
from tenants.portal import TenantPortalMixin
from tenants.roles import Role

from . import credentials, services
from .forms import KIND_FORMS, DeleteForm, GrantForm, ManifestScopeForm
from .models import Agent, Environment

RUN_PERMISSION = "run_environment"
SECRET_POST_FIELDS = ("token", "kubeconfig", "access_key_id", "secret_access_key", "session_token",
                      "service_account_key", "tenant_id", "client_id", "client_secret")

# What each setting is called on the page (injector.credentials.SETTING_FIELDS).
SETTING_LABELS = {
    "api_url": "API server URL",
    "ca_cert_pem": "CA certificate",
    "verify": "Verify the API server's certificate",
    "scope": "Scope",
    "namespaces": "Namespaces",
    "agent_image": "Agent image",
    "region": "Region",
    "endpoint_url": "Endpoint URL",
    "role_arn": "Role ARN",
    "project": "Project",
    "zone": "Zone",
    "api_endpoint": "API endpoint",
    "subscription_id": "Subscription ID",
    "resource_group": "Resource group",
    "base_url": "Management URL",
    "authority_host": "Authority host",
    "stop_mode": "How VMs are stopped",
}
# What the secrets of each kind are, in words (they are only ever "set" or "not set").
SECRETS_LABEL = {
    "kubernetes": "Service-account token",
    "aws": "Access key",
    "gcp": "Service account key",
    "azure": "Client secret (with tenant and client ID)",
}


def settings_summary(env: Environment) -> str:
    """One line of an environment's settings for the list (never a secret)."""
    config = env.config or {}
    if env.kind == Environment.Kind.KUBERNETES:
        where = (
            "whole cluster" if config.get("scope") == "cluster"
            else f"namespaces {', '.join(config.get('namespaces') or ())}"
        )
        return f"{config.get('api_url') or 'no API URL'} · {where}"
    if env.kind == Environment.Kind.AWS:
        return f"region {config.get('region', '')}"
    if env.kind == Environment.Kind.GCP:
        return f"project {config.get('project', '')} · zone {config.get('zone', '')}"
    if env.kind == Environment.Kind.AZURE:
        return f"subscription {config.get('subscription_id', '')} · group {config.get('resource_group', '')}"
    return "hosts running the node agent"


def agent_install_command(token: str | None) -> str:
    """The shell lines that install the node agent on a host and start it with the registration token
    (a placeholder without one). The token goes in the environment: a flag would show in `ps`."""
    token_text = shlex.quote(token) if token else "'<registration token>'"
    gateway = settings.AGENT_GATEWAY_PUBLIC_ADDRESS
    return "\n".join([
        "# As root on the host, in a copy of the Chaosplane source (the agent is its nodeagent/ package):",
        "apt-get install -y python3-venv python3-dev gcc libnetfilter-queue-dev libnfnetlink-dev "
        "iptables iproute2 stress-ng",
        "python3 -m venv /opt/chaosplane-agent",
        "/opt/chaosplane-agent/bin/pip install -r requirements-agent.txt",
        "# /etc/chaosplane-agent/ca.crt: the CA certificate that signed the agent gateway's certificate",
        f"CHAOSPLANE_AGENT_TOKEN={token_text} /opt/chaosplane-agent/bin/python -m nodeagent \\",
        f"  --gateway {gateway} --ca-file /etc/chaosplane-agent/ca.crt",
    ])


def agent_row(agent: Agent) -> dict[str, Any]:
    """An agent with its capabilities split into what it can do and what it cannot (and why)."""
    capabilities = sorted((agent.capabilities or {}).items())
    available = [name for name, cap in capabilities if isinstance(cap, dict) and cap.get("available")]
    return {
        "agent": agent,
        "labels": sorted((agent.labels or {}).items()),
        "available": available,
        "total": len(capabilities),
        "missing": [(name, cap.get("detail", "") if isinstance(cap, dict) else "")
                    for name, cap in capabilities if not (isinstance(cap, dict) and cap.get("available"))],
    }


def _data_url(text: str) -> str:
    """A download link for text that must not be fetched again (it holds a token shown once)."""
    return "data:application/yaml;charset=utf-8," + quote(text)


def _yaml(env: Environment, text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="chaosplane-{env.name}.yaml"'
    return response


def _bad_request(message: str) -> HttpResponse:
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")



# Pages ----------------------------------------------------------------------------------------------


class EnvironmentsView(TenantPortalMixin, TemplateView):
    """/t/<slug>/environments/: where this tenant's faults land; owners register new ones here (choose
    the kind, then fill in its fields)."""

    model = Environment
    action = "add"
    nav = "environments"
    template_name = "injector/environments.html"

    @method_decorator(sensitive_post_parameters(*SECRET_POST_FIELDS))
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        environments = list(
            self.scoped(Environment).annotate(
                registered=Count("agents"), connected=Count("agents", filter=Q(agents__connected=True))
            ).order_by("name")
        )
        kind = kwargs.get("form").kind if kwargs.get("form") else self.request.GET.get("kind", "")
        if "form" not in context and kind in KIND_FORMS and self.is_owner:
            context["form"] = KIND_FORMS[kind]()
        context.update(
            rows=[{"env": env, "summary": settings_summary(env)} for env in environments],
            kinds=Environment.Kind.choices,
            kind=kind if kind in KIND_FORMS else "",
            kind_label=Environment.Kind(kind).label if kind in KIND_FORMS else "",
            agent_kinds=[str(k) for k in services.AGENT_KINDS],
        )
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form_class = KIND_FORMS.get(request.POST.get("kind", ""))
        if form_class is None:
            messages.error(request, "Choose what kind of environment to register.")
            return redirect("injector:environments", tenant_slug=self.tenant.slug)
        form = form_class(request.POST)
        if form.is_valid():
            try:
                env, token = services.create_environment(
                    self.actor, self.tenant, form.cleaned_data["name"], form.kind, config=form.config(),
                    secrets=form.secrets(), requires_grant=form.cleaned_data["requires_grant"],
                )
            except ValidationError as error:
                add_service_error(form, error)
            else:
                messages.success(request, f"Registered {env.get_kind_display().lower()} {env.name}.")
                if token is None:
                    return redirect("injector:environment", tenant_slug=self.tenant.slug, name=env.name)
                # The new environment's page, with its token (shown this once).
                page = EnvironmentView()
                page.setup(request, tenant_slug=self.tenant.slug, name=env.name)
                page.actor, page.tenant, page.role = self.actor, self.tenant, self.role
                return page.respond_with_token(env, token)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class EnvironmentView(TenantPortalMixin, TemplateView):
    """/t/<slug>/environments/<name>/: an environment's settings (never its secrets), how to bring
    agents to it (a kubernetes cluster's manifest, a host's install command), its agents and grants.
    Owners rotate its registration token, grant `run`, and delete it."""

    model = Environment
    action = "change"
    nav = "environments"
    template_name = "injector/environment.html"

    def environment(self) -> Environment:
        return get_object_or_404(self.scoped(Environment), name=self.kwargs["name"])

    def get(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        return self.render_to_response(self.get_context_data(env=self.environment()))

    def respond_with_token(self, env: Environment, token: str, scope: dict[str, str] | None = None) -> HttpResponse:
        """The environment's page with its new registration token: this response only, never cached
        (the token is not stored, so no reload or back button shows it again)."""
        response = self.render_to_response(self.get_context_data(env=env, token=token, scope=scope))
        add_never_cache_headers(response)
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        env: Environment = kwargs["env"]
        token: str | None = kwargs.get("token")
        context = super().get_context_data(**kwargs)
        public = credentials.public_view(env.kind, env.config)
        context.update(
            env=env,
            token=token,
            settings_rows=[
                {"name": key, "label": SETTING_LABELS.get(key, key), "value": public[key]}
                for key in credentials.SETTING_FIELDS[env.kind] if key in public
            ],
            secrets_label=SECRETS_LABEL.get(env.kind),
            secrets_set=bool(env.secrets_encrypted),
            has_agents=env.kind in services.AGENT_KINDS,
            can_run=self.scoped(Environment, "run").filter(pk=env.pk).exists(),
            grant_form=kwargs.get("grant_form"),
            delete_form=kwargs.get("delete_form") or DeleteForm(),
        )
        if env.kind in services.AGENT_KINDS:
            context["agents"] = [agent_row(agent) for agent in env.agents.order_by("name")]
        if env.kind == Environment.Kind.KUBERNETES:
            context.update(self.manifest_context(env, token, kwargs.get("scope")))
        if env.kind == Environment.Kind.HOSTS:
            context["install_command"] = agent_install_command(token)
            context["gateway"] = settings.AGENT_GATEWAY_PUBLIC_ADDRESS
        context.update(self.grants_context(env, context["grant_form"]))
        return context

    def manifest_context(self, env: Environment, token: str | None, chosen: dict[str, str] | None) -> dict[str, Any]:
        """The generator: the environment's own scope and namespaces unless the reader chose others."""
        data = chosen if chosen is not None else self.request.GET
        if "scope" in data:
            form = ManifestScopeForm(data)
        else:
            stored = {"scope": env.config.get("scope", "namespace"),
                      "namespaces": ", ".join(env.config.get("namespaces") or ())}
            form = ManifestScopeForm(stored)
        manifest = None
        if form.is_valid():
            try:
                manifest = services.cluster_manifest_for_scope(
                    env, form.cleaned_data["scope"], form.cleaned_data["namespaces"], token
                )
            except ValidationError as error:
                add_service_error(form, error)
        query = {"scope": form.data.get("scope", ""), "namespaces": form.data.get("namespaces", "")}
        return {
            "scope_form": form,
            "scope_query": query,
            "manifest": manifest,
            "manifest_download": _data_url(manifest) if manifest and token else None,
        }

    def grant_choices(self, env: Environment, granted: list[Any]) -> list[tuple[str, str]]:
        """Members who may be granted `run`: not owners (they may always run), not granted already."""
        members = self.scoped(Membership).exclude(role=Role.OWNER).exclude(user__in=granted).select_related("user")
        return [(m.user.get_username(), f"{m.user.get_username()} ({m.role})")
                for m in members.order_by("user__username")]

    def granted_users(self, env: Environment) -> list[Any]:
        """Members holding `run` on the environment (a grant left by someone who has left counts for nothing)."""
        users = get_users_with_perms(env, with_superusers=False, with_group_users=False,
                                     only_with_perms_in=[RUN_PERMISSION])
        return list(users.filter(memberships__tenant=env.tenant).order_by("username"))

    def grants_context(self, env: Environment, form: GrantForm | None) -> dict[str, Any]:
        granted = self.granted_users(env)
        if not self.is_owner:
            return {"grants": granted}
        form = form or GrantForm()
        form.fields["username"].choices = self.grant_choices(env, granted)
        return {"grants": granted, "grant_form": form}


class EnvironmentTokenView(EnvironmentView):
    """POST (owners): a new registration token, shown once; the previous one stops working."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env = self.environment()
        try:
            token = services.rotate_registration_token(self.actor, env)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("injector:environment", tenant_slug=self.tenant.slug, name=env.name)
        messages.success(request, f"Issued a new registration token for {env.name}; the previous one no longer works.")
        scope = {key: request.POST[key] for key in ("scope", "namespaces") if key in request.POST} or None
        return self.respond_with_token(env, token, scope)


class EnvironmentGrantView(EnvironmentView):
    """POST (owners): let a member run against the environment."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env = self.environment()
        form = GrantForm(request.POST)
        form.fields["username"].choices = self.grant_choices(env, self.granted_users(env))
        if form.is_valid():
            try:
                services.set_run_grant(self.actor, env, form.cleaned_data["username"], True)
            except ValidationError as error:
                add_service_error(form, error)
            else:
                messages.success(request, f"{form.cleaned_data['username']} may now run against {env.name}.")
                return redirect("injector:environment", tenant_slug=self.tenant.slug, name=env.name)
        return self.render_to_response(self.get_context_data(env=env, grant_form=form), status=400)


class EnvironmentRevokeView(EnvironmentView):
    """POST (owners): take a member's grant back."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, name: str, username: str) -> HttpResponse:
        env = self.environment()
        try:
            services.set_run_grant(self.actor, env, username, False)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{username} may no longer run against {env.name}.")
        return redirect("injector:environment", tenant_slug=self.tenant.slug, name=env.name)


class EnvironmentDeleteView(EnvironmentView):
    """POST (owners, with the name typed again): delete the environment."""

    action = "delete"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env = self.environment()
        form = DeleteForm(request.POST)
        if form.is_valid() and form.cleaned_data["confirm"].strip() != env.name:
            form.add_error("confirm", f"Type {env.name} exactly to delete it.")
        if form.is_valid():
            try:
                services.delete_environment(self.actor, env)
            except ValidationError as error:
                add_service_error(form, error, aliases={"name": "confirm"})
            else:
                messages.success(request, f"Deleted environment {env.name}; its archived runs keep its name.")
                return redirect("injector:environments", tenant_slug=self.tenant.slug)
        return self.render_to_response(self.get_context_data(env=env, delete_form=form), status=400)


class ClusterManifestView(TenantPortalMixin, View):
    """GET: the manifest with a placeholder token (anyone in the tenant), for the environment's scope or
    the one chosen (?scope=namespace|cluster&namespaces=a,b). POST (owners): a new registration token,
    written into the manifest; the old token stops working."""

    model = Environment
    action = "change"

    def _env(self, name: str) -> Environment:
        return get_object_or_404(self.scoped(Environment), name=name, kind=Environment.Kind.KUBERNETES)

    def _scope(self, data: Any) -> tuple[str, list[str]] | HttpResponse | None:
        """The chosen scope and namespaces, None for the environment's own, or a 400 naming the problem."""
        if "scope" not in data:
            return None
        form = ManifestScopeForm(data)
        if not form.is_valid():
            return _bad_request(" ".join(m for errors in form.errors.values() for m in errors))
        return form.cleaned_data["scope"], form.cleaned_data["namespaces"]

    def _manifest(self, env: Environment, scope: tuple[str, list[str]] | None, token: str | None) -> HttpResponse:
        if scope is None:
            return _yaml(env, services.cluster_manifest(env, token))
        return _yaml(env, services.cluster_manifest_for_scope(env, *scope, token))

    def get(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env, scope = self._env(name), self._scope(request.GET)
        if isinstance(scope, HttpResponse):
            return scope
        try:
            return self._manifest(env, scope, None)
        except ValidationError as error:
            return _bad_request(" ".join(error.messages))

    def post(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env, scope = self._env(name), self._scope(request.POST)
        if isinstance(scope, HttpResponse):
            return scope
        if scope is not None:
            try:
                services.cluster_manifest_for_scope(env, *scope)  # refuse a bad choice before rotating
            except ValidationError as error:
                return _bad_request(" ".join(error.messages))
        response = self._manifest(env, scope, services.rotate_registration_token(self.actor, env))
        add_never_cache_headers(response)
        return response
