"""Portal pages of the tenants app. The tenant home (/t/<slug>/) is in experiments.urls."""
from django.urls import path

from . import views

app_name = "portal"

tenant = "t/<slug:tenant_slug>"
urlpatterns = [
    path("", views.portal_home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path(f"{tenant}/settings/", views.SettingsView.as_view(), name="settings"),
    path(f"{tenant}/members/", views.MembersView.as_view(), name="members"),
    path(f"{tenant}/members/<str:username>/role/", views.MemberRoleView.as_view(), name="member-role"),
    path(f"{tenant}/members/<str:username>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
    path(f"{tenant}/tokens/", views.TokensView.as_view(), name="tokens"),
    path(f"{tenant}/tokens/<str:token_id>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path(f"{tenant}/audit/", views.AuditView.as_view(), name="audit"),
]
