"""The environment pages' forms: one per kind (settings and write-only secrets), the cluster manifest's
scope, grants and the delete confirmation."""
from __future__ import annotations

from typing import Any

from django import forms

from . import credentials
from .models import Environment

SCOPE_CHOICES = [
    ("namespace", "Namespaces only: a Role in each namespace"),
    ("cluster", "Whole cluster: a ClusterRole (also lets selectors name nodes)"),
]


def _names(text: str) -> list[str]:
    """Names separated by commas, spaces or new lines."""
    return [part for part in text.replace(",", " ").split() if part]


class SecretTextarea(forms.Textarea):
    """A textarea that, like a password input, never renders a value back (a secret is not echoed)."""

    def get_context(self, name: str, value: Any, attrs: Any) -> dict[str, Any]:
        return super().get_context(name, None, attrs)


def _secret(label: str, help_text: str = "", required: bool = False) -> forms.CharField:
    return forms.CharField(label=label, required=required, strip=False, help_text=help_text,
                           widget=forms.PasswordInput(attrs={"autocomplete": "off"}))


def _optional(label: str, help_text: str = "", **attrs: Any) -> forms.CharField:
    return forms.CharField(label=label, required=False, help_text=help_text,
                           widget=forms.TextInput(attrs=attrs) if attrs else None)


class EnvironmentForm(forms.Form):
    """What every kind needs; a subclass per kind adds its settings and secrets. Fields are required
    only where the service says so: its messages (one per field) are the ones shown."""

    kind: str = ""
    setting_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()

    name = forms.CharField(
        max_length=63, help_text="Lowercase letters, digits and '-', like prod or eu-west; runs name it."
    )
    requires_grant = forms.BooleanField(
        required=False, label="Requires a grant",
        help_text="Only owners, and members an owner grants it to, may run experiments against it.",
    )

    def config(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.setting_fields
                if self.cleaned_data.get(name) not in (None, "", [])}

    def secrets(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.secret_fields if self.cleaned_data.get(name)}

    def setting_bound_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.setting_fields]

    def secret_bound_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.secret_fields]


class KubernetesForm(EnvironmentForm):
    kind = Environment.Kind.KUBERNETES
    setting_fields = ("api_url", "scope", "namespaces", "ca_cert_pem", "verify", "agent_image")
    secret_fields = ("token", "kubeconfig")

    api_url = _optional("API server URL", "Like https://k8s.example.com:6443.", placeholder="https://")
    scope = forms.ChoiceField(choices=SCOPE_CHOICES, initial="namespace", widget=forms.RadioSelect,
                              label="Where Chaosplane may act")
    namespaces = _optional("Namespaces", "Separated by commas or spaces; needed with “Namespaces only”.")
    ca_cert_pem = forms.CharField(
        label="CA certificate (PEM)", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Of the API server; leave empty if a public CA signed it.",
    )
    verify = forms.BooleanField(required=False, initial=True, label="Verify the API server's certificate")
    agent_image = _optional("Agent image", f"Default {credentials.DEFAULT_AGENT_IMAGE}.")
    token = _secret("Service-account token",
                    "Optional now: the cluster manifest creates the service account whose token this is.")
    kubeconfig = forms.CharField(
        label="…or a kubeconfig", required=False, strip=False, widget=SecretTextarea(attrs={"rows": 3}),
        help_text="Instead of the token: Chaosplane keeps its server, CA and token, not the file.",
    )

    def clean_namespaces(self) -> list[str]:
        return _names(self.cleaned_data["namespaces"])


class HostsForm(EnvironmentForm):
    kind = Environment.Kind.HOSTS


class AWSForm(EnvironmentForm):
    kind = Environment.Kind.AWS
    setting_fields = ("region", "endpoint_url", "role_arn")
    secret_fields = ("access_key_id", "secret_access_key", "session_token")

    region = _optional("Region", "Like us-east-1.")
    endpoint_url = _optional("Endpoint URL", "Only for an AWS-compatible endpoint; leave empty for AWS.")
    role_arn = _optional("Role ARN", "Optional: arn:aws:iam::<account>:role/<name>.")
    access_key_id = _secret("Access key ID")
    secret_access_key = _secret("Secret access key")
    session_token = _secret("Session token", "Only for temporary credentials.")


class GCPForm(EnvironmentForm):
    kind = Environment.Kind.GCP
    setting_fields = ("project", "zone", "api_endpoint")
    secret_fields = ("service_account_key",)

    project = _optional("Project ID", "Like my-project-123.")
    zone = _optional("Zone", "Like us-central1-a.")
    api_endpoint = _optional("API endpoint", "Only for a GCP-compatible endpoint; leave empty for Google Cloud.")
    service_account_key = forms.CharField(
        label="Service account key (JSON)", required=False, strip=False, widget=SecretTextarea(attrs={"rows": 4}),
        help_text="The key file's contents, as downloaded.",
    )


class AzureForm(EnvironmentForm):
    kind = Environment.Kind.AZURE
    setting_fields = ("subscription_id", "resource_group", "stop_mode", "base_url", "authority_host")
    secret_fields = ("tenant_id", "client_id", "client_secret")

    subscription_id = _optional("Subscription ID", "A UUID.")
    resource_group = _optional("Resource group")
    stop_mode = forms.ChoiceField(
        label="How VMs are stopped", initial="power-off",
        choices=[("power-off", "Power off (keeps the VM allocated)"), ("deallocate", "Deallocate")],
    )
    base_url = _optional("Management URL", "Only for a sovereign cloud or an emulator.")
    authority_host = _optional("Authority host", "Only for a sovereign cloud, like login.microsoftonline.us.")
    tenant_id = _secret("Directory (tenant) ID", "Of the service principal; a UUID.")
    client_id = _secret("Application (client) ID", "A UUID.")
    client_secret = _secret("Client secret")


KIND_FORMS: dict[str, type[EnvironmentForm]] = {
    form.kind: form for form in (KubernetesForm, HostsForm, AWSForm, GCPForm, AzureForm)
}


class ManifestScopeForm(forms.Form):
    """The generator's choice (GET): which scope, and which namespaces, the manifest grants."""

    scope = forms.ChoiceField(choices=SCOPE_CHOICES, widget=forms.RadioSelect, label="Permissions")
    namespaces = forms.CharField(required=False, help_text="Separated by commas or spaces.")

    def clean_namespaces(self) -> list[str]:
        return _names(self.cleaned_data["namespaces"])


class GrantForm(forms.Form):
    username = forms.ChoiceField(label="Member")


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the environment's name to confirm")
