"""Portal: Settings → Webhooks. Owners add, test and delete webhooks (a generated signing secret is shown
once, on the page that answers the create); operators see them and their delivery logs; viewers do not
see the tab, and the server refuses them anyway (Webhook.action_roles: view needs an operator). The
work and the audit are in reports.services, as for the API."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import TemplateView

from tenants.forms import add_service_error
from tenants.portal import TenantPortalMixin

from .. import services
from ..models import NOTIFICATION_EVENTS, Webhook, WebhookDelivery
from ..services import with_last_delivery

PAGE_SIZE = 25
EVENT_LABELS = {
    "run.started": "Run started", "run.finished": "Run finished", "run.failed": "Run failed (or refused)",
    "run.aborted": "Run aborted (stopped, halted, or by a status check)", "halt": "Halt",
    "schedule.missed": "Schedule missed a tick", "agent.lost": "Agent lost (silent past its lease)",
}


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=80)
    url = forms.CharField(
        label="URL", max_length=2000, widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/chaos",
                                                                  "autocomplete": "off"}),
        help_text="Stored encrypted and never shown again (only its host). For Grafana: its base URL, or the full "
                  ".../api/annotations URL.",
    )
    format = forms.ChoiceField(
        choices=[("generic", "Generic JSON, signed with HMAC-SHA256"), ("slack", "Slack incoming webhook"),
                 ("grafana", "Grafana annotation of each run's window")],
        initial="generic",
    )
    events = forms.MultipleChoiceField(
        choices=[(e, EVENT_LABELS.get(e, e)) for e in NOTIFICATION_EVENTS], required=False,
        widget=forms.CheckboxSelectMultiple, help_text="None ticked: every event.",
    )
    secret = forms.CharField(
        required=False, strip=False, max_length=500, widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Generic: the signing secret (leave empty to have one generated, shown once). Grafana: a service "
                  "account token that may write annotations. Slack: leave empty.",
    )

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        if not data.get("secret"):
            data.pop("secret", None)
        return data


class WebhooksMixin(TenantPortalMixin):
    model = Webhook
    nav = "webhooks"

    def webhook(self, webhook_id: Any, action: str = "view") -> Webhook:
        return get_object_or_404(self.scoped(Webhook, action), uuid=webhook_id)


@method_decorator(sensitive_post_parameters("url", "secret"), name="dispatch")
class WebhooksView(WebhooksMixin, TemplateView):
    """The tenant's webhooks with their last delivery; owners add one below the list."""

    action = "add"
    template_name = "reports/webhooks.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["webhooks"] = list(with_last_delivery(self.scoped(Webhook)).select_related("created_by"))
        context["event_labels"] = EVENT_LABELS
        if self.is_owner:
            context.setdefault("form", WebhookForm())
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = WebhookForm(request.POST)
        saved = None
        if form.is_valid():
            try:
                saved = services.create_webhook(self.actor, self.tenant, form.service_data())
            except ValidationError as error:
                add_service_error(form, error)
        if saved is None:
            return self.render_to_response(self.get_context_data(form=form), status=400)
        messages.success(request, f"Added webhook {saved.webhook.name}.")
        if not saved.generated_secret:
            return redirect("reports:webhooks", tenant_slug=self.tenant.slug)
        # The generated secret is in this response only (never stored in the clear, not in the session).
        response = self.render_to_response(self.get_context_data(issued=saved))
        add_never_cache_headers(response)
        return response


class WebhookView(WebhooksMixin, TemplateView):
    """One webhook and its delivery log, newest first, each delivery with every attempt."""

    template_name = "reports/webhook.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        hook = self.webhook(self.kwargs["webhook_id"])
        deliveries = WebhookDelivery.objects.filter(webhook=hook).order_by("-created_at", "-id")
        context.update(webhook=hook, page=Paginator(deliveries, PAGE_SIZE).get_page(self.request.GET.get("page")),
                       event_labels=EVENT_LABELS)
        return context


class WebhookTestView(WebhooksMixin, TemplateView):
    action = "change"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, webhook_id: Any) -> HttpResponse:
        hook = self.webhook(webhook_id, "change")
        delivery = services.send_test(self.actor, hook)
        if delivery.state == WebhookDelivery.State.DELIVERED:
            messages.success(request, f"Test delivered to {hook.url_hint}: HTTP {delivery.response_status} in "
                                      f"{delivery.duration_ms} ms.")
        else:
            messages.error(request, f"Test not delivered to {hook.url_hint}: {delivery.error or 'no answer'}.")
        return redirect("reports:webhook", tenant_slug=self.tenant.slug, webhook_id=hook.uuid)


class WebhookEnableView(WebhooksMixin, TemplateView):
    action = "change"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, webhook_id: Any) -> HttpResponse:
        hook = self.webhook(webhook_id, "change")
        enabled = request.POST.get("enabled") == "true"
        services.update_webhook(self.actor, hook, {"enabled": enabled})
        messages.success(request, f"Webhook {hook.name} {'enabled' if enabled else 'disabled'}.")
        return redirect("reports:webhook", tenant_slug=self.tenant.slug, webhook_id=hook.uuid)


class WebhookDeleteView(WebhooksMixin, TemplateView):
    action = "delete"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, tenant_slug: str, webhook_id: Any) -> HttpResponse:
        hook = self.webhook(webhook_id, "delete")
        services.delete_webhook(self.actor, hook)
        messages.success(request, f"Deleted webhook {hook.name} and its delivery log.")
        return redirect("reports:webhooks", tenant_slug=self.tenant.slug)


urlpatterns = [
    path("settings/webhooks/", WebhooksView.as_view(), name="webhooks"),
    path("settings/webhooks/<uuid:webhook_id>/", WebhookView.as_view(), name="webhook"),
    path("settings/webhooks/<uuid:webhook_id>/test/", WebhookTestView.as_view(), name="webhook-test"),
    path("settings/webhooks/<uuid:webhook_id>/enabled/", WebhookEnableView.as_view(), name="webhook-enabled"),
    path("settings/webhooks/<uuid:webhook_id>/delete/", WebhookDeleteView.as_view(), name="webhook-delete"),
]
