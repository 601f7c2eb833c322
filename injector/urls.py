"""Portal pages of the injector app."""
from django.urls import path

from . import views

app_name = "injector"

tenant = "t/<slug:tenant_slug>"
env = f"{tenant}/environments/<slug:name>"
urlpatterns = [
    path(f"{tenant}/environments/", views.EnvironmentsView.as_view(), name="environments"),
    path(f"{env}/", views.EnvironmentView.as_view(), name="environment"),
    path(f"{env}/token/", views.EnvironmentTokenView.as_view(), name="environment-token"),
    path(f"{env}/grants/", views.EnvironmentGrantView.as_view(), name="environment-grant"),
    path(f"{env}/grants/<str:username>/revoke/", views.EnvironmentRevokeView.as_view(), name="environment-revoke"),
    path(f"{env}/delete/", views.EnvironmentDeleteView.as_view(), name="environment-delete"),
    path(f"{env}/manifest/", views.ClusterManifestView.as_view(), name="cluster-manifest"),
]
