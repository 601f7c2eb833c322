"""What every portal page's header needs: the tenants you can switch to."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .models import Tenant
from .portal import portal_actor, tenant_home_url


def portal(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def switchable_tenants() -> list[dict[str, Any]]:
        actor = portal_actor(request)
        return [
            {"slug": t.slug, "name": t.name, "role": actor.role_in(t), "url": tenant_home_url(t)}
            for t in Tenant.objects.restrict(actor, "view").order_by("slug")
        ]

    # Lazy: pages that never show the header (admin, API) never run the query.
    return {
        "portal_tenants": SimpleLazyObject(switchable_tenants),
        "portal_token": getattr(request, "session_token", None),
    }
