"""Portal sessions that were opened with an API token stay bound to that token."""
from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse

from .models import ApiToken
from .services import record_token_use, token_in_force

#: Session key holding the primary key of the token a session was opened with.
SESSION_TOKEN_KEY = "chaosplane_token_id"  # noqa: S105 (a session key name, not a secret)
#: Session key telling the login page why a session ended (set after the old session is flushed).
SIGNED_OUT_REASON_KEY = "chaosplane_signed_out_reason"
TOKEN_ENDED_MESSAGE = "Your session ended because its API token was revoked or expired. Sign in again."  # noqa: S105


class SessionTokenMiddleware:
    """Sets `request.session_token` (which `Actor.from_request` reads) for token sessions, and ends
    the session as soon as the token is revoked or expired or its holder is no longer a member: the
    token, not the password behind its user, is what this session was granted."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.session_token = None  # type: ignore[attr-defined]
        token_id = request.session.get(SESSION_TOKEN_KEY)
        if token_id is not None:
            token = self._live_token(request, token_id)
            if token is None:
                logout(request)
                request.session[SIGNED_OUT_REASON_KEY] = TOKEN_ENDED_MESSAGE
            else:
                request.session_token = token  # type: ignore[attr-defined]
                if self._is_admin_path(request.path_info):
                    # A token is scoped to one tenant and role; it must never open the staff admin,
                    # even when its user is staff.
                    raise PermissionDenied("A session opened with an API token cannot use the admin.")
                record_token_use(token)
        return self.get_response(request)

    @staticmethod
    def _live_token(request: HttpRequest, token_id: int) -> ApiToken | None:
        if not request.user.is_authenticated:
            return None
        token = ApiToken.objects.select_related("user", "tenant").filter(pk=token_id).first()
        if token is None or token.user_id != request.user.pk or not token_in_force(token):
            return None
        return token

    @staticmethod
    def _is_admin_path(path: str) -> bool:
        try:
            return path.startswith(reverse("admin:index"))
        except NoReverseMatch:
            return False
