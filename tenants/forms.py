"""Portal forms. They only shape and check input; the rules live in tenants.services, whose
ValidationErrors `add_service_error` puts next to the field they name."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from . import services
from .models import ApiToken
from .roles import Role, rank

SIGN_IN_FAILED = "Sign-in failed. Check what you entered and try again."


def add_service_error(form: forms.Form, error: ValidationError, aliases: dict[str, str] | None = None) -> None:
    """Attach a service's ValidationError to the form: to the field it names when the form has that
    field (directly, through `aliases`, or by its last part: "settings.region" -> region), else to the
    form as a whole (so no message is ever lost)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for key, errors in error.error_dict.items():
        field = (aliases or {}).get(key) or key
        if field not in form.fields:
            field = field.split(".", 1)[-1]
        form.add_error(field if field in form.fields else None, errors)


class LoginForm(forms.Form):
    """Either a username and password, or an API token (like Chaos Mesh's dashboard)."""

    username = forms.CharField(required=False, max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    password = forms.CharField(required=False, strip=False, widget=forms.PasswordInput)
    token = forms.CharField(
        required=False,
        label="API token",
        widget=forms.PasswordInput(attrs={"placeholder": "cpt_…", "autocomplete": "off"}),
        help_text="A session opened with a token sees only the token's tenant, at the token's role.",
    )

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user: Any = None
        self.api_token: ApiToken | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        raw_token = (data.get("token") or "").strip()
        if raw_token:
            self.api_token = services.authenticate_token(raw_token)
            self.user = self.api_token.user if self.api_token else None
        elif data.get("username") and data.get("password"):
            self.user = authenticate(self.request, username=data["username"], password=data["password"])
        else:
            raise ValidationError("Enter a username and password, or an API token.")
        if self.user is None:
            # One message for every failure: it must not tell which part was wrong.
            raise ValidationError(SIGN_IN_FAILED)
        return data


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="The user must already have an account.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class ChangeRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What the token is for, e.g. “ci-pipeline”.")
    role = forms.ChoiceField(help_text="At most your own role.")
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=services.MAX_TOKEN_DAYS,
        label="Expires in (days)",
        help_text="Leave empty for a token that does not expire.",
    )

    def __init__(self, *args: Any, max_role: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Offer only the roles the service would accept; it checks again anyway.
        allowed = [(value, label) for value, label in Role.choices if rank(value) <= rank(max_role)]
        self.fields["role"].choices = allowed
        if allowed:
            self.fields["role"].initial = allowed[-1][0]  # the lowest role: least privilege by default
