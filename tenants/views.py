"""Portal pages for signing in, members, API tokens and the audit log. Thin: scoping and permissions
come from TenantPortalMixin, the work from tenants.services."""
from __future__ import annotations

from typing import Any

from django import forms
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
from .api.serializers import DAYS, PolicySerializer
from .filters import AuditEntryFilterSet
from .forms import AddMemberForm, ChangeRoleForm, LoginForm, TokenCreateForm, add_service_error
from .middleware import SESSION_TOKEN_KEY, SIGNED_OUT_REASON_KEY
from .models import ApiToken, AuditEntry, Membership, Policy, Tenant
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


# Settings: the tenant's policy ----------------------------------------------------------------------


def _names_text(names: list[str]) -> str:
    return ", ".join(names)


def _names(text: str) -> list[str]:
    return [part for part in (text or "").replace(",", " ").split() if part]


def _number(label: str, help_text: str, minimum: int = 0) -> forms.CharField:
    """A number that may be left empty (no limit); the API's rules check it."""
    return forms.CharField(required=False, label=label, help_text=help_text,
                           widget=forms.NumberInput(attrs={"min": minimum}))


def _messages(errors: Any) -> list[str]:
    """The API's error messages, flat (a list field's errors come keyed by item)."""
    if isinstance(errors, dict):
        return [m for value in errors.values() for m in _messages(value)]
    if isinstance(errors, (list, tuple)):
        return [m for value in errors for m in _messages(value)]
    return [str(errors)]


class PolicyForm(forms.Form):
    """Shapes the policy for a person (namespaces as text, numbers that may be empty); the rules are the
    API's (PolicySerializer), so the portal and the API accept and refuse the same values."""

    protected_namespaces = forms.CharField(
        required=False, label="Protected namespaces",
        help_text="No experiment may touch these, whatever it selects. Separate names with commas or spaces.",
    )
    namespace_allowlist = forms.CharField(
        required=False, label="Namespace allowlist",
        help_text="If set, experiments may touch only these namespaces. Empty: any namespace that is not protected.",
    )
    require_opt_in_annotation = forms.BooleanField(
        required=False, label="Require the opt-in annotation",
        help_text='Without an allowlist, only pods annotated chaosplane.io/inject="true" may be targets.',
    )
    max_targets = _number("Max targets per run", "Empty: no limit.")
    max_target_percent = _number("Max share of the candidates (%)", "1 to 100. Empty: no limit.", minimum=1)
    max_duration_seconds = _number(
        "Max duration (seconds)",
        "Longest a run may last; runs without a duration are refused when set. Empty: no limit.",
    )
    max_concurrent_runs = _number("Max concurrent runs", "Active runs at once in this tenant. Empty: no limit.")
    dry_run_by_default = forms.BooleanField(
        required=False, label="Dry run by default",
        help_text="New runs only record what they would inject unless asked to run for real.",
    )

    NUMBERS = ("max_targets", "max_target_percent", "max_duration_seconds", "max_concurrent_runs")

    @classmethod
    def initial_from(cls, policy: Policy) -> dict[str, Any]:
        initial = {name: getattr(policy, name) for name in cls.base_fields}
        initial["protected_namespaces"] = _names_text(policy.protected_namespaces)
        initial["namespace_allowlist"] = _names_text(policy.namespace_allowlist)
        return initial

    def api_data(self) -> dict[str, Any]:
        """The form's values in the API's shape."""
        data: dict[str, Any] = {
            "protected_namespaces": _names(self.cleaned_data["protected_namespaces"]),
            "namespace_allowlist": _names(self.cleaned_data["namespace_allowlist"]),
            "require_opt_in_annotation": self.cleaned_data["require_opt_in_annotation"],
            "dry_run_by_default": self.cleaned_data["dry_run_by_default"],
        }
        for name in self.NUMBERS:
            value = self.cleaned_data[name].strip()
            data[name] = value or None
        return data


class TimeWindowForm(forms.Form):
    """One allowed time window: days, start and end (HH:MM; an end before the start runs past midnight)
    and a time zone."""

    days = forms.MultipleChoiceField(
        required=False, choices=[(day, day.capitalize()) for day in DAYS], widget=forms.CheckboxSelectMultiple
    )
    start = forms.CharField(required=False, widget=forms.TextInput(attrs={"type": "time"}))
    end = forms.CharField(required=False, widget=forms.TextInput(attrs={"type": "time"}))
    timezone = forms.CharField(required=False, initial="UTC", label="Time zone",
                               widget=forms.TextInput(attrs={"placeholder": "UTC"}))

    def api_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"days": data["days"], "start": data["start"], "end": data["end"], "timezone": data["timezone"] or "UTC"}


class BaseTimeWindowFormSet(forms.BaseFormSet):
    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove this window"


TimeWindowFormSet = forms.formset_factory(TimeWindowForm, formset=BaseTimeWindowFormSet, extra=1, can_delete=True)


class SettingsView(TenantPortalMixin, TemplateView):
    """The tenant's settings: its blast-radius policy. Everyone in the tenant reads it; owners change it
    through the service the API uses (and with the API's rules), and a refused value changes nothing."""

    model = Policy
    action = "change"
    nav = "settings"
    template_name = "tenants/settings.html"

    def policy(self) -> Policy:
        # Every tenant gets a policy when it is made; one that predates that reads as the defaults.
        return self.scoped(Policy).first() or Policy(tenant=self.tenant)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["policy"] = policy = self.policy()
        if self.is_owner:
            context.setdefault("form", PolicyForm(initial=PolicyForm.initial_from(policy)))
            context.setdefault("windows", TimeWindowFormSet(initial=policy.allowed_windows, prefix="windows"))
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = PolicyForm(request.POST)
        windows = TimeWindowFormSet(request.POST, prefix="windows")
        if form.is_valid() and windows.is_valid():
            kept = self.kept_windows(windows)
            body = PolicySerializer(
                data={**form.api_data(), "allowed_windows": [w.api_data() for w in kept]}, partial=False
            )
            if body.is_valid():
                try:
                    services.update_policy(self.actor, self.tenant, dict(body.validated_data))
                except ValidationError as error:
                    add_service_error(form, error)
                else:
                    messages.success(request, "Saved the policy. It applies to runs started from now on.")
                    return redirect("portal:settings", tenant_slug=self.tenant.slug)
            else:
                self.add_api_errors(form, kept, body.errors)
        return self.render_to_response(self.get_context_data(form=form, windows=windows), status=400)

    @staticmethod
    def kept_windows(windows: Any) -> list[TimeWindowForm]:
        """The rows to save: not removed, and not the untouched blank rows."""
        deleted = set(map(id, windows.deleted_forms))
        initial = windows.initial_form_count()
        return [
            f for i, f in enumerate(windows.forms)
            if id(f) not in deleted and (i < initial or f.has_changed())
        ]

    @staticmethod
    def add_api_errors(form: PolicyForm, kept: list[TimeWindowForm], errors: dict[str, Any]) -> None:
        """The API's messages next to their fields; a window's next to its row's fields."""
        for name, messages_ in errors.items():
            # A list's errors come per item: as a list, or keyed by the item's index.
            rows = dict(enumerate(messages_)) if isinstance(messages_, list) else messages_
            if name == "allowed_windows" and isinstance(rows, dict) and all(
                isinstance(i, int) and i < len(kept) and isinstance(e, dict) for i, e in rows.items()
            ):
                for i, row_errors in rows.items():
                    row = kept[i]
                    for field, text in (row_errors or {}).items():
                        row.add_error(field if field in row.fields else None, _messages(text))
            else:
                form.add_error(name if name in form.fields else None, _messages(messages_))
