"""Portal pages for signing in, members, API tokens and the audit log. Thin: scoping and permissions
come from TenantPortalMixin, the work from tenants.services."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, login
from django.contrib.auth.views import LogoutView, redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView, TemplateView

from . import services
from .filters import AuditEntryFilterSet
from .forms import AddMemberForm, ChangeRoleForm, LoginForm, TokenCreateForm, add_service_error
from .middleware import SESSION_TOKEN_KEY, SIGNED_OUT_REASON_KEY
from .models import ApiToken, AuditEntry, Membership, Tenant
from .portal import TenantPortalMixin, portal_actor, tenant_home_url

AUDIT_PAGE_SIZE = 50
# The shared FilterSet's labels are derived from its lookups ("Created at is less than"); say it plainly.
AUDIT_FILTER_LABELS = {
    "actor": ("Actor", None),
    "action": ("Action", None),
    "since": ("Since (UTC)", "From this time on, inclusive."),
    "until": ("Until (UTC)", "Before this time."),
}

# Sign in and out -----------------------------------------------------------------------------------


class PortalLoginView(FormView):
    form_class = LoginForm
    template_name = "tenants/login.html"

    @method_decorator([sensitive_post_parameters("password", "token"), csrf_protect, never_cache])
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["signed_out_reason"] = self.request.session.pop(SIGNED_OUT_REASON_KEY, None)
        context["next"] = self.request.GET.get(REDIRECT_FIELD_NAME, "")
        return context

    def form_valid(self, form: LoginForm) -> HttpResponse:
        login(self.request, form.user, backend="django.contrib.auth.backends.ModelBackend")
        if form.api_token is not None:
            self.request.session[SESSION_TOKEN_KEY] = form.api_token.pk
        else:
            # login() keeps the session of the same user: drop a token binding from an earlier login.
            self.request.session.pop(SESSION_TOKEN_KEY, None)
        return HttpResponseRedirect(self.get_success_url())

    def get_success_url(self) -> str:
        target = self.request.POST.get(REDIRECT_FIELD_NAME) or self.request.GET.get(REDIRECT_FIELD_NAME)
        allowed = url_has_allowed_host_and_scheme(
            target, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        )
        return target if target and allowed else reverse("portal:home")


class PortalLogoutView(LogoutView):
    """POST only (Django's LogoutView refuses GET): a link cannot sign anybody out."""


def portal_home(request: HttpRequest) -> HttpResponse:
    """`/`: the first of your tenants, or a page saying you belong to none yet."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    first = Tenant.objects.restrict(portal_actor(request), "view").order_by("slug").first()
    if first is not None:
        return redirect(tenant_home_url(first))
    return render(request, "tenants/no_tenant.html")


# Members ------------------------------------------------------------------------------------------


class MembersView(TenantPortalMixin, TemplateView):
    """Everyone in the tenant sees its members; owners add, re-role and remove them."""

    model = Membership
    action = "add"
    nav = "members"
    template_name = "tenants/members.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        members = self.scoped(Membership).select_related("user").order_by("user__username")
        row_errors = kwargs.get("row_errors", {})
        context["rows"] = [
            {"member": m, "form": ChangeRoleForm(initial={"role": m.role}, prefix=m.user.username),
             "error": row_errors.get(m.user.username)}
            for m in members
        ]
        context.setdefault("add_form", AddMemberForm())
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = AddMemberForm(request.POST)
        if form.is_valid():
            try:
                membership = services.add_member(self.actor, self.tenant, **form.cleaned_data)
            except ValidationError as error:
                add_service_error(form, error)
            else:
                messages.success(request, f"Added {membership.user.username} as {membership.role}.")
                return redirect("portal:members", tenant_slug=self.tenant.slug)
        return self.render_to_response(self.get_context_data(add_form=form), status=400)

    def member(self, username: str) -> Membership:
        return get_object_or_404(self.scoped(Membership).select_related("user", "tenant"), user__username=username)

    def row_failed(self, username: str, error: ValidationError) -> HttpResponse:
        context = self.get_context_data(row_errors={username: " ".join(error.messages)})
        return self.render_to_response(context, status=400)


class MemberRoleView(MembersView):
    action = "change"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, username: str) -> HttpResponse:
        membership = self.member(username)
        form = ChangeRoleForm(request.POST, prefix=username)
        if not form.is_valid():
            return self.row_failed(username, ValidationError("Choose a role."))
        try:
            membership = services.change_role(self.actor, membership, form.cleaned_data["role"])
        except ValidationError as error:
            return self.row_failed(username, error)
        messages.success(request, f"{username} is now {membership.role}.")
        return redirect("portal:members", tenant_slug=self.tenant.slug)


class MemberRemoveView(MembersView):
    action = "delete"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, username: str) -> HttpResponse:
        try:
            services.remove_member(self.actor, self.member(username))
        except ValidationError as error:
            return self.row_failed(username, error)
        messages.success(request, f"Removed {username} from {self.tenant.slug}; their tokens here are revoked.")
        return redirect("portal:members", tenant_slug=self.tenant.slug)


# Tokens -------------------------------------------------------------------------------------------


class TokensView(TenantPortalMixin, TemplateView):
    """Every member sees the tenant's tokens (never secrets) and issues tokens of their own at most at
    their role; members revoke their own, owners any."""

    model = ApiToken
    action = "add"
    nav = "tokens"
    template_name = "tenants/tokens.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        tokens = list(self.scoped(ApiToken).select_related("user"))
        revocable = set(self.scoped(ApiToken, "delete").values_list("pk", flat=True))
        context["rows"] = [{"token": t, "can_revoke": t.pk in revocable and t.state != "revoked"} for t in tokens]
        context.setdefault("form", TokenCreateForm(max_role=self.role))
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = TokenCreateForm(request.POST, max_role=self.role)
        issued = None
        if form.is_valid():
            try:
                issued = services.issue_token(self.actor, self.tenant, **form.cleaned_data)
            except ValidationError as error:
                add_service_error(form, error)
        if issued is None:
            return self.render_to_response(self.get_context_data(form=form), status=400)
        # The secret is rendered in this response only: it is never stored (not even in the session),
        # and the page is not cached, so neither a reload nor the back button shows it again.
        response = self.render_to_response(
            self.get_context_data(form=TokenCreateForm(max_role=self.role), issued=issued)
        )
        add_never_cache_headers(response)
        return response


class TokenRevokeView(TokensView):
    action = "delete"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, token_id: str) -> HttpResponse:
        token = get_object_or_404(self.scoped(ApiToken), prefix=token_id)
        # The service refuses someone else's token to a non-owner (PermissionDenied: the 403 page).
        if services.revoke_token(self.actor, token):
            messages.success(request, f"Revoked token {token.name} ({token.prefix}).")
        else:
            messages.info(request, f"Token {token.name} ({token.prefix}) was already revoked.")
        return redirect("portal:tokens", tenant_slug=self.tenant.slug)


# Audit log ----------------------------------------------------------------------------------------


class AuditView(TenantPortalMixin, TemplateView):
    """The tenant's audit log, newest first, with the API's filters and a CSV export."""

    model = AuditEntry
    nav = "audit"
    template_name = "tenants/audit.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        queryset = self.scoped(AuditEntry).order_by("-seq")
        filters = AuditEntryFilterSet(self.request.GET or None, queryset=queryset)
        for name, (label, help_text) in AUDIT_FILTER_LABELS.items():
            field = filters.form.fields[name]
            field.label = label
            field.help_text = help_text or field.help_text
            if name in ("since", "until"):
                # A date picker in browsers; its "2025-01-31T09:30" is what the ISO 8601 filter reads.
                field.widget.input_type = "datetime-local"
        # Invalid filters show their errors and no rows, rather than silently ignoring a bad date.
        entries = filters.qs if not filters.is_bound or filters.is_valid() else queryset.none()
        page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(self.request.GET.get("page"))
        query = {k: v for k, v in self.request.GET.items() if k in filters.form.fields and v}
        csv_url = reverse("tenants-api:audit-list", kwargs={"tenant_slug": self.tenant.slug})
        context.update(
            filters=filters,
            page=page,
            filter_query=urlencode(query),
            csv_url=f"{csv_url}?{urlencode({**query, 'format': 'csv'})}",
            is_filtered=bool(query),
        )
        return context


class SettingsView(TenantPortalMixin, TemplateView):
    """The tenant's settings: its blast-radius policy (being built for issue 8)."""

    model = Tenant
    nav = "settings"
    template_name = "tenants/settings.html"
